"""Migration 0010 (tariffs) adds organisations, accounts and the tickets' tariff column. Old
tickets keep NULL (read as the default tariff); the downgrade copies the tickets table on SQLite
(batch mode, to drop the column) and still never gives a deleted ticket's number again."""

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


def test_tariffs_come_and_go_without_touching_the_tickets(tmp_path: Path) -> None:
    path = tmp_path / "desk.sqlite3"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = f"sqlite+aiosqlite:///{path}"
    command.upgrade(config, "0009")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO users (id, first_name, created_at, updated_at)"
            " VALUES (1, 'Alice', '2026-01-01', '2026-01-01')"
        )
        for n in range(3):
            db.execute(INSERT, (f"k{n}",))
        db.execute("DELETE FROM tickets WHERE number = 3")

    command.upgrade(config, "0010")

    with sqlite3.connect(path) as db:
        assert [t for (t,) in db.execute("SELECT tariff FROM tickets")] == [None, None]
        db.execute(
            "INSERT INTO organisations (name, tariff, created_at, updated_at)"
            " VALUES ('Romashka LLC', 'premium', '2026-01-01', '2026-01-01')"
        )
        db.execute(
            "INSERT INTO accounts (number, organisation_id, created_at, updated_at)"
            " VALUES ('10000001', 1, '2026-01-01', '2026-01-01')"
        )
        db.execute(
            INSERT.replace("paused_seconds)", "paused_seconds, tariff)").replace(
                "0, 0)", "0, 0, 'premium')"
            ),
            ("k9",),
        )
        rows = db.execute("SELECT number, tariff FROM tickets ORDER BY number").fetchall()
        assert rows == [(1, None), (2, None), (4, "premium")]
        db.execute("DELETE FROM tickets WHERE number = 4")  # the copy must not reuse it

    command.downgrade(config, "0009")
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert "accounts" not in tables and "organisations" not in tables
        db.execute(INSERT, ("k10",))
        numbers = [n for (n,) in db.execute("SELECT number FROM tickets ORDER BY number")]
        assert numbers == [1, 2, 5]
        schema = db.execute("SELECT sql FROM sqlite_master WHERE name = 'tickets'").fetchone()[0]
        assert "AUTOINCREMENT" in schema and "tariff" not in schema
        partial = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_tickets_awaiting_first_response'"
        ).fetchone()[0]
        assert "WHERE first_response_at IS NULL" in partial
