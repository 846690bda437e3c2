"""Engine and session factory; migrations run through Alembic on start."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
# The newest revision in MIGRATIONS_DIR: a database already there is not migrated at all
# (tests/unit/test_storage.py holds it to Alembic's own head, so a new revision must move it).
SCHEMA_HEAD = "0012"


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


_Outcome = tuple[Any, int, int | None, list[Any]]  # description, rowcount, lastrowid, rows


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """One statement, start to finish, on the connection's own thread."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _OneTripCursor:
    """What SQLAlchemy's aiosqlite adapter uses of ``aiosqlite.Cursor``, in one trip to the
    connection's thread per statement instead of four (make the cursor, execute, fetch, close:
    each a hand-off to the thread and a wake-up of the event loop). The desk reads small
    results, and no stream: the rows come back with the statement."""

    arraysize = 1

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> _OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _execute(self, sql: str, parameters: Any, *, many: bool) -> _OneTripCursor:
        # aiosqlite's own hand-off to its thread (untyped).
        handoff: Callable[..., Any] = self._connection._execute
        outcome: _Outcome = await handoff(_run, self._connection._conn, sql, parameters, many)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _OneTripCursor:
        return await self._execute(sql, () if parameters is None else parameters, many=False)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _OneTripCursor:
        return await self._execute(sql, parameters, many=True)

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


class _OneTripConnection(aiosqlite.Connection):
    def cursor(self) -> Any:
        return _OneTripCursor(self)


def _one_trip_connector(path: str, options: dict[str, Any]) -> Callable[[], Any]:
    def connect() -> aiosqlite.Connection:
        connection = _OneTripConnection(partial(sqlite3.connect, path, **options), 64)
        connection._thread.daemon = True  # as SQLAlchemy makes its own aiosqlite threads
        return connection

    return connect


def create_engine(url: str, *, read_only: bool = False, **kwargs: Any) -> AsyncEngine:
    """An engine; on SQLite a writer takes the write lock at BEGIN, a reader never does."""
    _ensure_sqlite_dir(url)
    sqlite = is_sqlite(url)
    if sqlite:
        kwargs.setdefault("connect_args", {"timeout": 30})
        parsed = make_url(url)
        if parsed.database not in (None, "", ":memory:") and not parsed.query:
            # The same arguments SQLAlchemy's dialect would give sqlite3.connect.
            options = {"check_same_thread": False, **kwargs.pop("connect_args")}
            kwargs["async_creator"] = _one_trip_connector(str(parsed.database), options)
    engine = create_async_engine(url, **kwargs)
    if not sqlite:
        return engine

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the writer; two processes may share the file.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        if not read_only:
            # Take transactions into our own hands (see _begin_immediate).
            dbapi_connection.isolation_level = None

    if not read_only:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            # A deferred transaction that reads and then writes fails with SQLITE_BUSY when
            # another connection wrote in between; taking the write lock up front makes
            # concurrent writers wait their turn (busy_timeout) instead of failing.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """The writer and reader session factories of one database.

    SQLite has one writer at a time. Writers share a single connection, so they queue in the
    pool (an asyncio wait) instead of in SQLite's busy handler, which sleeps and polls; readers
    get their own connections and never take the write lock. On PostgreSQL both are the same
    ordinary pool.
    """

    def __init__(self, url: str) -> None:
        self.single_writer = is_sqlite(url)
        if self.single_writer:
            self.engine = create_engine(url, pool_size=1, max_overflow=0, pool_timeout=120)
            self.read_engine = create_engine(url, read_only=True)
        else:
            self.engine = create_engine(url)
            self.read_engine = self.engine
        self.writer = create_session_factory(self.engine)
        self.reader = create_session_factory(self.read_engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def migrate(url: str, modules: Mapping[str, Path] | None = None) -> dict[str, Exception]:
    """Bring the schema to the newest revision (synchronous: runs before the event loop), then
    each module's tables (``modules``: a module's name and its directory of Alembic revisions).

    A module's history is its own, kept in a version table of its own
    (``alembic_version_<name>``): the desk's history never names a module's revision, so a
    module that is uninstalled, or fails, leaves the desk's migrations as they were. The desk's
    own failure raises; a module's is returned (name → error), for that module to be skipped."""
    _ensure_sqlite_dir(url)
    if not modules and _schema_revisions(url) == [SCHEMA_HEAD]:
        # Up to date, as at most starts: Alembic (its import, reading every revision) would
        # add about 10 MiB to the process's peak memory for nothing.
        return {}
    from alembic import command

    command.upgrade(_alembic_config(url), "head")
    failed: dict[str, Exception] = {}
    for name, versions in (modules or {}).items():
        try:
            command.upgrade(_alembic_config(url, versions, module_version_table(name)), "head")
        except Exception as error:  # noqa: BLE001 - whatever it was, the module is skipped
            failed[name] = error
    return failed


def _schema_revisions(url: str) -> list[str]:
    """The desk's revisions the database is at (none: a new database, or not one of ours)."""

    async def read() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text("SELECT version_num FROM alembic_version"))
                return list(result.scalars())
        except DBAPIError:
            return []  # no such table yet
        finally:
            await engine.dispose()

    return asyncio.run(read())


def module_version_table(name: str) -> str:
    """Where a module's Alembic history is kept (a table name of plain characters)."""
    return "alembic_version_" + re.sub(r"[^a-z0-9_]", "_", name.lower())


def _alembic_config(url: str, versions: Path | None = None, version_table: str = "") -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if versions is not None:
        # The desk's env.py, a module's revisions (ConfigParser treats "%" as interpolation).
        config.set_main_option("path_separator", "newline")
        config.set_main_option("version_locations", str(versions).replace("%", "%%"))
    config.attributes["database_url"] = url
    if version_table:
        config.attributes["version_table"] = version_table
    return config
