"""Railway Infrastructure as Code for TherapistAI (`railway-sdk`; the CLI plans and applies it).

Two layouts, chosen by LAYOUT below (or by `layout` in the context's input):

- "one-service": gunicorn web + background training in one service, built from this
  repository's Dockerfile, with a volume for model versions and Railway Postgres for the data.
  A service with a volume cannot have replicas.
- "scale-out": web replicas and a trainer service (`python -m trainer worker`) that share only
  Railway Postgres and a Railway Bucket: the trainer publishes versions to the bucket, the
  database records the active one, and replicas with USE_LOCAL_AI=1 fetch and verify it.

docs/DEPLOY.md explains both, and how to move a service off railway.json.
"""

from railway_sdk import bucket, define_railway, postgres, project, service, volume

LAYOUT = "one-service"  # or "scale-out"
WEB_REPLICAS = 2
MODEL_DIR = "/app/models"  # where the volume mounts; the app reads it from RAILWAY_VOLUME_MOUNT_PATH
BUILD = {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
RESTART = {"restartPolicyType": "ON_FAILURE", "restartPolicyMaxRetries": 5}
WEB = {
    "build": BUILD,
    "start": "gunicorn -c gunicorn.conf.py api:app",
    "healthcheck": "/health/ready",  # 200 once migrations ran and, with USE_LOCAL_AI=1, the model is loaded
    "healthcheckTimeout": 300,
    "deploy": RESTART,
}


@define_railway
def main(ctx=None):
    """The desired state of one environment, in the chosen layout."""
    layout = (ctx or {}).get("layout", LAYOUT)
    if layout == "one-service":
        return one_service()
    if layout == "scale-out":
        return scale_out()
    raise ValueError(f"layout must be 'one-service' or 'scale-out', not {layout!r}")


def one_service():
    """Web and training in one service, model versions on its volume."""
    db = postgres("postgres")
    models = volume("models")
    web = service("therapistai", **WEB, volumeMounts={MODEL_DIR: models}, env={
        "DATABASE_URL": db.env.DATABASE_URL,
        "USE_LOCAL_AI": "0",
        "ENABLE_AUTO_TRAINING": "1",
        "AUTO_TRAIN_THRESHOLD": "100",
    })
    return project("therapistai", resources=[db, models, web])


def scale_out():
    """Web replicas and a trainer, sharing Postgres and a bucket; no volume anywhere."""
    db = postgres("postgres")
    models = bucket("models")
    store = {
        "DATABASE_URL": db.env.DATABASE_URL,
        # Railway fills in ${{models.BUCKET}}, as in any variable that references another resource.
        "MODEL_STORE_URL": "s3://${{models.BUCKET}}/versions",
        "AWS_ENDPOINT_URL": models.env.ENDPOINT,
        "AWS_ACCESS_KEY_ID": models.env.ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": models.env.SECRET_ACCESS_KEY,
        "AWS_REGION": models.env.REGION,
    }
    web = service("therapistai", **WEB, replicas=WEB_REPLICAS, env={
        **store,
        "USE_LOCAL_AI": "0",  # set to 1 once a version is active and the admins judge it ready
        "ENABLE_AUTO_TRAINING": "0",  # the trainer service trains
    })
    trainer = service("trainer", build=BUILD, start="python -m trainer worker", deploy=RESTART, env={
        **store,
        "AUTO_TRAIN_THRESHOLD": "100",
    })
    return project("therapistai", resources=[db, models, web, trainer])
