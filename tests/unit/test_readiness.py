"""/readyz (SPEC §11): ready only when every check answers and the instance is not stopping;
a failing or hanging check says which, and the balancer gets 503."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels import health
from bot.channels.health import Readiness, add_health_routes


class Probe:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.hang = False

    async def __call__(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise ConnectionRefusedError("no")


async def _get(readiness: Readiness, path: str = "/readyz") -> tuple[int, dict[str, object]]:
    app = web.Application()
    add_health_routes(app, readiness)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        return response.status, await response.json()


async def test_ready_when_every_check_answers_then_not_while_one_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database, telegram = Probe(), Probe()
    readiness = Readiness({"database": database, "telegram": telegram}, remember={"telegram": 60})
    assert await _get(readiness) == (200, {"ready": True, "database": "ok", "telegram": "ok"})
    database.fail = True
    status, body = await _get(readiness)
    assert status == 503
    assert body == {"ready": False, "database": "failed: ConnectionRefusedError", "telegram": "ok"}
    # Telegram's good answer is remembered for a while: it was asked once in two probes.
    assert (database.calls, telegram.calls) == (2, 1)

    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.05)
    database.fail, database.hang = False, True
    status, body = await _get(readiness)
    assert (status, body["database"]) == (503, "failed: TimeoutError")


async def test_a_stopping_instance_is_not_ready_but_alive() -> None:
    readiness = Readiness({"database": Probe()})
    readiness.stopping = True
    status, body = await _get(readiness)
    assert (status, body["ready"], body["instance"]) == (503, False, "stopping")
    assert await _get(readiness, "/healthz") == (200, {"ok": True})
