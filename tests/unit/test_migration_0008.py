"""Migration 0008 copies the tickets table on SQLite (batch mode, for the problem link's
foreign key): the copy keeps AUTOINCREMENT and its counter, so a deleted ticket's number is
still never given again, and the rows and the partial index survive."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

from bot.db.engine import MIGRATIONS_DIR

INSERT = (
    "INSERT INTO tickets (intake_key, customer_id, account_number, topic, kind, description,"
    " priority, status, line, locale, created_at, updated_at, reopened_count, paused_seconds)"
    " VALUES (?, 1, '1234', 't', 'incident', 'd', 2, 'new', 1, 'en', '2026-01-01',"
    " '2026-01-01', 0, 0)"
)


def test_the_copy_of_tickets_keeps_its_numbers_and_never_reuses_one(tmp_path: Path) -> None:
    path = tmp_path / "desk.sqlite3"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = f"sqlite+aiosqlite:///{path}"
    command.upgrade(config, "0007")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO users (id, first_name, created_at, updated_at)"
            " VALUES (1, 'Alice', '2026-01-01', '2026-01-01')"
        )
        for n in range(3):
            db.execute(INSERT, (f"k{n}",))
        db.execute("DELETE FROM tickets WHERE number = 3")

    command.upgrade(config, "head")

    with sqlite3.connect(path) as db:
        db.execute(INSERT, ("k9",))
        assert [n for (n,) in db.execute("SELECT number FROM tickets ORDER BY number")] == [1, 2, 4]
        schema = db.execute("SELECT sql FROM sqlite_master WHERE name = 'tickets'").fetchone()[0]
        assert "AUTOINCREMENT" in schema
        partial = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_tickets_awaiting_first_response'"
        ).fetchone()[0]
        assert "WHERE first_response_at IS NULL" in partial

    command.downgrade(config, "0007")
    with sqlite3.connect(path) as db:
        db.execute(INSERT, ("k10",))
        numbers = [n for (n,) in db.execute("SELECT number FROM tickets ORDER BY number")]
        assert numbers == [1, 2, 4, 5]
