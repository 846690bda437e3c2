"""``python -m bot`` runs the desk; ``python -m bot migrate`` only migrates the database;
``python -m bot sandbox`` runs it against the built-in emulated Telegram with a web page;
``python -m bot failed ...`` lists the updates whose handling failed and replays them;
``python -m bot modules`` lists the installed modules and what each adds;
``python -m bot accounts import FILE.csv`` imports customer accounts and their tariffs."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.config import SettingsError, load_settings

USAGE = (
    "usage: python -m bot [run|migrate|sandbox [--port N] [--db PATH]"
    "|failed {list,show,retry,resolve} ...|modules|accounts import FILE.csv]"
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "run"
    if command in {"-h", "--help"}:
        print(USAGE)
        return 0
    if command == "sandbox":
        from bot.sandbox.runner import main as sandbox

        return sandbox(args[1:])
    if command == "failed":
        # Only the database is needed: the running bot does the replaying (bot/failures.py).
        from bot.failures import main as failed

        return failed(args[1:])
    if command == "accounts":
        from bot.accounts import main as accounts

        return accounts(args[1:])
    if command == "modules":
        from bot.modules.cli import main as modules_listing

        return modules_listing()
    if command not in {"run", "migrate"}:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic tells every plugin it loads at INFO; only its warnings matter to an operator.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    # aioimaplib logs every untagged IMAP response it does not use at INFO.
    logging.getLogger("aioimaplib").setLevel(max(logging.WARNING, logging.getLogger().level))
    from bot.modules.loader import load

    # The schema, and installed modules' tables (SPEC §12): a module that fails to load or to
    # migrate is left out (the running desk reports it).
    modules = load(settings.database_url, settings.enabled_modules, settings.disabled_modules)
    if command == "migrate":
        logging.getLogger("bot").info("database is up to date")
        return 0

    from aiogram.exceptions import TelegramUnauthorizedError

    from bot.app import run

    try:
        asyncio.run(run(settings, modules=modules))
    except TelegramUnauthorizedError:
        print(
            "Configuration error: BOT_TOKEN: Telegram does not accept this token", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
