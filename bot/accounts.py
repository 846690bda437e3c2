"""``python -m bot accounts import FILE.csv``: customer accounts and their organisations'
tariffs (SPEC §12) from a CSV with the columns ``account_number,organisation,tariff``.

The import is all or nothing: every line is checked first and each bad one is reported with its
number and reason; one bad line and nothing is written. Otherwise one transaction adds or
updates every account (importing the same file again changes nothing). Accounts the file does
not name are left as they are. Tickets keep the tariff they were registered under.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.clock import SystemClock
from bot.config import Settings, SettingsError, load_settings
from bot.services.accounts import AccountRow, ImportSummary, import_accounts, parse_accounts

USAGE = "usage: python -m bot accounts import FILE.csv"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot accounts",
        description="Customer accounts: which organisation and tariff an account number has.",
    )
    commands = parser.add_subparsers(dest="action", required=True)
    load = commands.add_parser(
        "import",
        help="add or update accounts from a CSV (account_number,organisation,tariff)",
    )
    load.add_argument("file", type=Path, metavar="FILE.csv")
    return parser


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    """Exit status: 0 imported, 1 the file has bad lines (nothing imported), 2 cannot run."""
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as error:
            print(error, file=sys.stderr)
            return 2
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        print(f"Cannot read {path}: {error}", file=sys.stderr)
        return 2
    parsed = parse_accounts(text, pattern=settings.account_number_pattern, tariffs=settings.tariffs)
    if parsed.errors:
        for bad in parsed.errors:
            print(f"{path}: {bad}", file=sys.stderr)
        print(
            f"Nothing imported: {len(parsed.errors)} bad line(s). Fix them and run it again.",
            file=sys.stderr,
        )
        return 1
    return asyncio.run(_import(settings.database_url, parsed.rows, path))


async def _import(url: str, rows: Sequence[AccountRow], path: Path) -> int:
    from sqlalchemy import inspect

    from bot.db.engine import Database
    from bot.db.uow import transaction

    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        if "accounts" not in tables:
            print(
                "This database has no accounts table yet: run `python -m bot migrate`.",
                file=sys.stderr,
            )
            return 2
        async with transaction(database.writer) as uow:
            summary = await import_accounts(uow.session, rows, SystemClock().now())
    finally:
        await database.dispose()
    print(f"{path}: {describe(summary)}")
    return 0


def describe(summary: ImportSummary) -> str:
    return (
        f"accounts: {summary.added} added, {summary.updated} updated, "
        f"{summary.unchanged} unchanged; organisations: {summary.organisations_added} added, "
        f"{summary.organisations_updated} with a new tariff"
    )
