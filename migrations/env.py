"""Alembic environment: runs on the connection the service hands over, or on DATABASE_URL."""

from alembic import context

from storage.tables import Base


def run_on(connection) -> None:
    """Apply the migrations on an open connection."""
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    # The alembic command line: build the engine the service would use.
    from config import Settings
    from storage.engine import make_engine

    with make_engine(Settings.from_env().database_url).begin() as conn:
        run_on(conn)
