from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.harness import STAFF_CHAT_ID, BotProcess, bot_env

E2E_BACKENDS = ("sqlite", "postgresql")


def _backends(config: pytest.Config) -> list[str]:
    chosen = [b.strip() for b in str(config.getoption("--e2e-backends")).split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(E2E_BACKENDS))
    if unknown or not chosen:
        raise pytest.UsageError(
            f"--e2e-backends: {', '.join(unknown) or 'none'}; choose from {', '.join(E2E_BACKENDS)}"
        )
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that starts the desk runs on each chosen database, under one test id per
    # backend; with one backend (the default) the ids stay as they are.
    backends = _backends(metafunc.config)
    if "desk_database" in metafunc.fixturenames and len(backends) > 1:
        metafunc.parametrize("desk_database", backends, indirect=True)


@pytest.fixture
def desk_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``DATABASE_URL`` the desk is started with: an SQLite file of the test's own, or an
    empty database of its own on the tests' PostgreSQL (migrated by the desk as it starts)."""
    backend = getattr(request, "param", None) or _backends(request.config)[0]
    if backend == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'support.sqlite3'}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    server.add_group(STAFF_CHAT_ID, "e-Comet support staff")
    yield server
    await server.stop()


@pytest.fixture
def alice(fake: FakeTelegram) -> FakeUser:
    return fake.add_user(1001, "Alice", username="alice", language_code="en")


@pytest.fixture
def boris(fake: FakeTelegram) -> FakeUser:
    return fake.add_user(1002, "Борис", username="boris", language_code="ru")


# Staff: Anna, a member of the staff group, and Boris, an administrator there.
@pytest.fixture
def anna(fake: FakeTelegram) -> FakeUser:
    user = fake.add_user(2001, "Anna", username="anna_support", language_code="ru")
    fake.add_member(STAFF_CHAT_ID, user)
    return user


@pytest.fixture
def boris_staff(fake: FakeTelegram) -> FakeUser:
    user = fake.add_user(2002, "Boris", username="boris_support", language_code="ru")
    fake.add_member(STAFF_CHAT_ID, user, admin=True)
    return user


BotFactory = Callable[..., Awaitable[BotProcess]]


@pytest.fixture
async def start_bot(
    fake: FakeTelegram, tmp_path: Path, request: pytest.FixtureRequest, desk_database: str
) -> AsyncIterator[BotFactory]:
    started: list[BotProcess] = []

    async def factory(**overrides: str) -> BotProcess:
        workdir = tmp_path / f"bot{len(started)}"
        workdir.mkdir(exist_ok=True)
        env = bot_env(fake, tmp_path, **{"DATABASE_URL": desk_database, **overrides})
        process = BotProcess(fake, workdir, env)
        started.append(process)
        await process.start()
        return process

    yield factory
    for process in started:
        code = await process.stop()
        failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
        if failed or code not in (0, None, -9):
            print(f"---- bot log ({process.workdir}) ----\n{process.log()}")
