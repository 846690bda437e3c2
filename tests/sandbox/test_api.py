"""The sandbox's own HTTP API without a browser: refusals, the clock, and a --db desk that comes
back with its chats after a restart."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

from tests.sandbox.conftest import Sandbox, call
from tests.waiting import eventually_sync

ALICE = 1001


class _Trap:
    """Unpickling this creates a directory: proof that the file was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def wait_view(sandbox: Sandbox, person: int, predicate, timeout: float = 20) -> dict[str, Any]:
    def view() -> dict[str, Any]:
        return call(sandbox, f"/api/view?person={person}")[1]

    def matched() -> dict[str, Any] | None:
        seen = view()
        return seen if predicate(seen) else None

    # Each look is a request the sandbox answers: every 0.1 s leaves it time for the bot.
    return eventually_sync(
        matched, lambda: f"the view never matched: {json.dumps(view())[:2000]}", timeout, 0.1
    )


def bot_texts(view: dict[str, Any]) -> list[str]:
    return [m["html"] for m in view["messages"] if m["by_bot"]]


def test_refusals_are_short_answers_not_tracebacks(sandbox: Sandbox) -> None:
    assert call(sandbox, "/api/send", {"person": 999, "text": "hi"}) == (
        400,
        {"error": "unknown person"},
    )
    assert call(sandbox, "/api/send", {"person": ALICE, "text": "   "})[0] == 400
    # A customer is not a member of the staff group and cannot write there.
    status, body = call(
        sandbox, "/api/send", {"person": ALICE, "chat": -1001000000001, "text": "hi"}
    )
    assert status == 400
    assert "not a member" in body["error"]
    assert call(sandbox, "/api/clock", {"step": "back 1 day"})[0] == 400
    assert call(sandbox, "/api/clock", {"step": "to 25:00"})[0] == 400
    assert call(sandbox, "/api/press", {"person": ALICE, "chat": ALICE})[0] == 400


def test_a_desk_kept_with_db_comes_back_with_its_chats_and_clock(tmp_path: Path) -> None:
    database = tmp_path / "desk" / "sandbox.sqlite3"
    first = Sandbox(tmp_path, "--db", str(database))
    try:
        assert call(first, "/api/send", {"person": ALICE, "text": "/start"})[0] == 200
        before = wait_view(first, ALICE, lambda v: bot_texts(v))
        status, clock = call(first, "/api/clock", {"step": "day"})
        assert status == 200
        assert clock["shifted"].startswith("+1d")
    finally:
        assert first.stop() == 0, first.log()
    assert database.exists()
    # The chats are kept as JSON (never pickle: loading a pickle runs code).
    kept = json.loads(database.with_name("sandbox.sqlite3.world").read_text(encoding="utf-8"))
    assert kept["format"] == "ecomet-sandbox-world"
    assert kept["version"] == 1
    assert kept["clock_offset_seconds"] >= 86400

    second = Sandbox(tmp_path, "--db", str(database))
    try:
        view = wait_view(second, ALICE, lambda v: v["messages"])
        assert [m["id"] for m in view["messages"]] == [m["id"] for m in before["messages"]]
        assert view["clock"]["shifted"].startswith("+1d")
        # New updates are new to the bot (their ids go on from where the world stopped).
        assert call(second, "/api/send", {"person": ALICE, "text": "/new"})[0] == 200
        after = wait_view(
            second, ALICE, lambda v: any("What is your request about?" in t for t in bot_texts(v))
        )
        assert after["messages"][-1]["id"] > before["messages"][-1]["id"]
    finally:
        assert second.stop() == 0, second.log()


def test_the_clock_only_moves_forward(sandbox: Sandbox) -> None:
    _, world = call(sandbox, "/api/world")
    before = world["clock"]
    for step in ("hour", "day", "3days", "to 09:00", "to 21:00"):
        status, clock = call(sandbox, "/api/clock", {"step": step})
        assert status == 200
        assert clock["iso"] > before["iso"], step
        before = clock
    assert before["now"].endswith("21:00")
    assert before["open"] is False  # 21:00 is the end of the support day


def test_damaged_saved_chats_cost_the_chats_not_the_desk(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.sqlite3"
    first = Sandbox(tmp_path, "--db", str(database))
    try:
        call(first, "/api/send", {"person": ALICE, "text": "/start"})
        wait_view(first, ALICE, lambda v: bot_texts(v))
    finally:
        assert first.stop() == 0, first.log()
    # What older sandboxes kept there: a pickle. This one would make a directory if loaded.
    marker = tmp_path / "the-pickle-ran"
    database.with_name("sandbox.sqlite3.world").write_bytes(pickle.dumps(_Trap(marker)))
    second = Sandbox(tmp_path, "--db", str(database))
    try:
        assert "cannot be read" in second.log()
        assert not marker.exists()
        # The bot still answers: new update ids are not mistaken for ones it handled before.
        call(second, "/api/send", {"person": ALICE, "text": "/start"})
        wait_view(second, ALICE, lambda v: bot_texts(v))
    finally:
        assert second.stop() == 0, second.log()
