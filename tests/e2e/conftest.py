from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.harness import STAFF_CHAT_ID, BotProcess, bot_env


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
    fake: FakeTelegram, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[BotFactory]:
    started: list[BotProcess] = []

    async def factory(**overrides: str) -> BotProcess:
        workdir = tmp_path / f"bot{len(started)}"
        workdir.mkdir(exist_ok=True)
        env = bot_env(fake, tmp_path, **overrides)
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
