"""Real database servers for the tests: Debian's PostgreSQL 15 and Redis, no mocks.

``pg_server`` starts, once per test session, a PostgreSQL cluster made by ``initdb`` in a temp
dir (trust authentication, loopback only, fsync off: the data dies with the session anyway), on
a free port on 127.0.0.1, as the ``postgres`` system user (PostgreSQL refuses to run as root).
``pg_url`` gives each test a fresh empty database of its own (``CREATE DATABASE``, dropped
after the test) as a ``postgresql+asyncpg://`` URL. ``redis_server`` starts a Redis the same
way (no persistence); ``redis_url`` gives each test a database number of its own, emptied.

``backend_url`` is the backend as a parameter: the test runs once on an SQLite file and once on a
fresh PostgreSQL database (an empty, unmigrated URL either way), so a test written once proves
the storage on both.

Both servers are children of pytest with a watchdog that stops them (and removes the dir) if
pytest ends without its teardown. When a test that used one fails, the server's log lines
written during the test are printed.

Packages (Debian 12): ``postgresql redis-server``; ``.ci/run`` installs them. Missing, they skip
the tests with the reason, or fail them where ``DB_SERVERS_REQUIRED=1`` (CI). ``DB_SERVERS_PG_BIN``
names another directory of PostgreSQL's binaries and ``DB_SERVERS_REDIS`` another Redis binary
(a path that does not exist hides them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.watchdog import start_watchdog

HOST = "127.0.0.1"
PACKAGES = "postgresql redis-server"
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "postgres"  # the system user the cluster runs as (Debian's package creates it)


# --- what is there -----------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    override = os.environ.get("DB_SERVERS_PG_BIN")
    found = Path(override or PG_BIN)
    return found if (found / "postgres").exists() and (found / "initdb").exists() else None


def _redis_binary() -> str | None:
    override = os.environ.get("DB_SERVERS_REDIS")
    if override is not None:
        return override if Path(override).exists() else None
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")


def pg_unavailable() -> str | None:
    """Why PostgreSQL cannot run here, or None."""
    install = f"install the Debian packages: apt-get install {PACKAGES}"
    if _pg_bin() is None:
        return (
            f"PostgreSQL 15 not found in {os.environ.get('DB_SERVERS_PG_BIN', PG_BIN)} ({install})"
        )
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[test]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"no '{PG_USER}' system user to run PostgreSQL as ({install})"
    return None


def redis_unavailable() -> str | None:
    """Why Redis cannot run here, or None."""
    if _redis_binary() is None:
        return f"redis-server not found (install the Debian packages: apt-get install {PACKAGES})"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis client is not installed (pip install -e '.[test]')"
    return None


def _required_or_skip(problem: str | None, what: str) -> None:
    if problem is None:
        return
    if os.environ.get("DB_SERVERS_REQUIRED") == "1":
        pytest.fail(f"{what} required (DB_SERVERS_REQUIRED=1): {problem}")
    pytest.skip(problem)


def _free_port() -> int:
    # Another process could take it before the server binds it: `_start` retries on a new one.
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _temp_parent() -> str:
    # The postgres user must reach the dir: a TMPDIR inside /root would shut it out.
    base = Path(tempfile.gettempdir()).resolve()
    reachable = all(path.stat().st_mode & 0o001 for path in (base, *base.parents))
    return str(base) if reachable else "/tmp"


# --- one server process ------------------------------------------------------------------------


class _Server:
    """One server as a child of pytest in its own process group, its output in a log file,
    with a watchdog that stops it and removes its dir if pytest dies without its teardown."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: IO[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None

    def start(self, command: list[str], user: str | None = None) -> None:
        self.output = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            command,
            cwd=self.root,
            **_as_user(user),
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=self.output,
            start_new_session=True,  # Ctrl-C reaches pytest alone, which stops it in order
        )
        # PostgreSQL: SIGINT is the fast shutdown; Redis exits on it too.
        self.watchdog = start_watchdog(self.root, [self.proc.pid], signal.SIGINT)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> int | None:
        """Stop it (again: nothing); return its exit code if it had ended alone."""
        died = self.exited()
        if self.watchdog is not None:
            self.watchdog.terminate()
            self.watchdog.wait(5)
            assert self.watchdog.stdin is not None
            self.watchdog.stdin.close()
            self.watchdog = None
        if self.proc is not None:
            if self.proc.poll() is None:
                # PostgreSQL: SIGINT is the fast shutdown (clients cut off, not waited for).
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # what it left in its group
            self.proc = None
        if self.output is not None:
            self.output.close()
            self.output = None
        return died

    def log_mark(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log(self, since: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(since)
            return handle.read().decode(errors="replace")


def _wait_until(ready: Callable[[], bool], server: _Server, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.exited() is not None:
            raise EOFError
        if ready():
            return
        time.sleep(0.05)
    raise TimeoutError


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


# --- PostgreSQL --------------------------------------------------------------------------------


class PostgresServer:
    """The running cluster: a superuser ``postgres`` without password, on loopback."""

    def __init__(self, server: _Server, port: int, bin_dir: Path) -> None:
        self.server = server
        self.host = HOST
        self.port = port
        self.bin_dir = bin_dir
        self.root = server.root
        self._names = itertools.count(1)

    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{PG_USER}@{self.host}:{self.port}/{database}"

    def _run(self, sql: str) -> None:
        # Through asyncpg, which the tests need anyway (no psql needed): a loop of its own, as
        # the fixtures are synchronous (a test's loop may not be running yet).
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(
                host=self.host, port=self.port, user=PG_USER, database="postgres"
            )
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def create_database(self, hint: str) -> str:
        name = f"t{next(self._names)}_{hint}"[:60]
        self._run(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        # WITH (FORCE): a connection the test left open (a pool not disposed) must not keep it.
        self._run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def exited(self) -> int | None:
        return self.server.exited()


def _pg_command(bin_dir: Path, data: Path, port: int, sockets: Path) -> list[str]:
    return [
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-h",
        HOST,
        "-p",
        str(port),
        "-k",
        str(sockets),  # its Unix socket in our dir, not /var/run/postgresql
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]


def _as_user(user: str | None) -> dict[str, Any]:
    # PostgreSQL will not run as root: as root, the child switches to its system user (uid, gid,
    # no supplementary groups) before it executes the binary. Done by Popen itself rather than
    # `runuser`, so that the server is our direct child and our signals reach it unrelayed.
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": [],
        "env": {**os.environ, "HOME": entry.pw_dir, "USER": user, "LOGNAME": user},
    }


@contextlib.contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """initdb a cluster in a fresh temp dir, start it; stop it and remove the dir on exit."""
    bin_dir = _pg_bin()
    assert bin_dir is not None, pg_unavailable()
    root = Path(tempfile.mkdtemp(prefix="pg-server-", dir=_temp_parent()))
    root.chmod(0o755)
    data, sockets = root / "data", root / "run"
    for path in (data, sockets):
        path.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam(PG_USER)
        for path in (root, data, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    server = _Server("postgres", root)
    try:
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            **_as_user(PG_USER),
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed in {data}:\n{initdb.stdout}\n{initdb.stderr}")
        port = _start(server, lambda port: _pg_command(bin_dir, data, port, sockets), PG_USER)
        yield PostgresServer(server, port, bin_dir)
        died = server.stop()
        if died is not None:
            raise AssertionError(f"PostgreSQL ended during the session ({died}):\n{server.log()}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _start(server: _Server, command: Callable[[int], list[str]], user: str | None = None) -> int:
    for attempt in range(3):
        port = _free_port()
        mark = server.log_mark()
        server.start(command(port), user)
        try:
            _wait_until(functools.partial(_accepts, server, port), server)
            return port
        except (EOFError, TimeoutError):
            died = server.stop()
            text = server.log(mark)
            if "already in use" in text and attempt < 2:
                continue
            raise RuntimeError(
                f"{server.name} did not start (exit code {died}) in {server.root}:\n{text}"
            ) from None
    raise AssertionError("unreachable")


def _accepts(server: _Server, port: int) -> bool:
    if not _listening(port):
        return False
    if server.name == "redis":
        return _redis_ping(port)
    # Listening is not ready: during recovery PostgreSQL answers "the database system is
    # starting up". The log line says when it takes connections.
    return "database system is ready to accept connections" in server.log()


# --- Redis -------------------------------------------------------------------------------------


def _redis_ping(port: int, database: int = 0, flush: bool = False) -> bool:
    # RESP by hand: a few bytes, no client library needed to know that it answers.
    commands = [["SELECT", str(database)]] + ([["FLUSHDB"]] if flush else []) + [["PING"]]
    payload = b"".join(
        f"*{len(c)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in c)
        for c in commands
    )
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            conn.sendall(payload)
            answer = b""
            while answer.count(b"\r\n") < len(commands):
                chunk = conn.recv(256)
                if not chunk:
                    return False
                answer += chunk
    except OSError:
        return False
    return answer.endswith(b"+PONG\r\n") and b"-ERR" not in answer


class RedisServer:
    DATABASES = 256  # --databases: one per test, reused round-robin (each emptied first)

    def __init__(self, server: _Server, port: int) -> None:
        self.server = server
        self.host = HOST
        self.port = port
        self.root = server.root
        self._numbers = itertools.cycle(range(1, self.DATABASES))  # 0 left to manual use

    def url(self, database: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{database}"

    def fresh_database(self) -> int:
        number = next(self._numbers)
        if not _redis_ping(self.port, number, flush=True):
            raise AssertionError(f"Redis did not empty database {number}:\n{self.server.log()}")
        return number

    def exited(self) -> int | None:
        return self.server.exited()


@contextlib.contextmanager
def run_redis() -> Iterator[RedisServer]:
    binary = _redis_binary()
    assert binary is not None, redis_unavailable()
    root = Path(tempfile.mkdtemp(prefix="redis-server-", dir=_temp_parent()))
    server = _Server("redis", root)

    def command(port: int) -> list[str]:
        return [
            binary,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
            "--databases",
            str(RedisServer.DATABASES),
            "--daemonize",
            "no",
        ]

    try:
        port = _start(server, command)
        yield RedisServer(server, port)
        died = server.stop()
        if died is not None:
            raise AssertionError(f"Redis ended during the session ({died}):\n{server.log()}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- fixtures ----------------------------------------------------------------------------------


def _slug(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40] or "test"


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "rep_call", None)
    return report is not None and report.failed


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    _required_or_skip(pg_unavailable(), "PostgreSQL")
    with run_postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh empty database for this test (no schema: ``migrate`` it)."""
    if pg_server.exited() is not None:
        pytest.fail(f"PostgreSQL has ended:\n{pg_server.server.log()}")
    mark = pg_server.server.log_mark()
    name = pg_server.create_database(_slug(request))
    yield pg_server.url(name)
    if _failed(request):
        print(f"---- PostgreSQL's log during the test ({pg_server.root}) ----")
        print(pg_server.server.log(mark) or "(nothing logged)")
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    _required_or_skip(redis_unavailable(), "Redis")
    with run_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis database number of this test's own, empty."""
    if redis_server.exited() is not None:
        pytest.fail(f"Redis has ended:\n{redis_server.server.log()}")
    mark = redis_server.server.log_mark()
    yield redis_server.url(redis_server.fresh_database())
    if _failed(request):
        print(f"---- Redis's log during the test ({redis_server.root}) ----")
        print(redis_server.server.log(mark) or "(nothing logged)")


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn: an SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'support.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url
