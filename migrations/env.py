"""Alembic environment (async template, batch mode so SQLite ALTERs work)."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from bot.config import DEFAULT_SQLITE_URL
from bot.db.engine import create_engine
from bot.db.models import Base, EnumValue, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    return str(url or DEFAULT_SQLITE_URL)


def _render_item(type_: str, obj: object, _autogen: object) -> str | bool:
    # Migrations must not import the models: a UTC column is a plain DateTime in the schema.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    if type_ == "type" and isinstance(obj, EnumValue):
        return repr(obj.impl).replace("String", "sa.String").replace("Integer", "sa.Integer")
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, render_as_batch=True, render_item=_render_item
    )
    with context.begin_transaction():
        context.run_migrations()


# Several instances may start at once (SPEC §11): on PostgreSQL they take turns, each reading
# the schema's version only once the one before has committed (so the others find it done).
MIGRATION_LOCK = 0x45436F6D6574  # "EComet"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        render_item=_render_item,
        # A module's own history (bot/db/engine.py migrate) is kept in a table of its own.
        version_table=config.attributes.get("version_table", "alembic_version"),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        # A failed migration too (a module's is reported, and the desk goes on).
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
