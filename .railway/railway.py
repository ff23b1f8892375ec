"""Railway Infrastructure as Code for TherapistAI (`railway-sdk`; the CLI plans and applies it).

One service: gunicorn web + background training, built from this repository's
Dockerfile, with a volume for model versions and Railway Postgres for the data.
A service with a volume cannot have replicas: see docs/DEPLOY.md for scale-out.
"""

from railway_sdk import define_railway, postgres, project, service, volume

MODEL_DIR = "/app/models"  # where the volume mounts; the app reads it from RAILWAY_VOLUME_MOUNT_PATH


@define_railway
def main(ctx=None):
    """The desired state of one environment."""
    db = postgres("postgres")
    models = volume("models")
    web = service(
        "therapistai",
        build={"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"},
        start="gunicorn -c gunicorn.conf.py api:app",
        healthcheck="/health",
        healthcheckTimeout=300,  # migrations run before the first answer
        deploy={"restartPolicyType": "ON_FAILURE", "restartPolicyMaxRetries": 5},
        volumeMounts={MODEL_DIR: models},
        env={
            "DATABASE_URL": db.env.DATABASE_URL,
            "USE_LOCAL_AI": "0",
            "ENABLE_AUTO_TRAINING": "1",
            "AUTO_TRAIN_THRESHOLD": "100",
        },
    )
    return project("therapistai", resources=[db, models, web])
