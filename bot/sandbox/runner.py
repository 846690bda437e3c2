"""``python -m bot sandbox``: the real bot, the emulated Telegram and the page, in one process.

No token, no ``.env``: the bot talks to the built-in emulator on 127.0.0.1 exactly as it talks
to Telegram (over HTTP), and to a mail server of the sandbox's own on 127.0.0.1 (SMTP and IMAP)
exactly as it talks to a mail provider, so what the page shows is what the product does."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
import webbrowser
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from bot.clock import ShiftedClock
from bot.config import LOCALES, Settings, SettingsError, load_settings
from bot.emulator import FakeTelegram
from bot.sandbox.mailbox import LocalMail, MailStore
from bot.sandbox.mailpane import MailPane
from bot.sandbox.web import SandboxPage, is_loopback_name
from bot.sandbox.world import (
    ACCOUNTS_CSV,
    SANDBOX_TOKEN,
    STAFF_CHAT_ID,
    SUPPORT_ADDRESS,
    SUPPORT_NAME,
    Person,
    mail_people,
    populate,
)

if TYPE_CHECKING:
    from bot.modules.loader import Modules

log = logging.getLogger("bot.sandbox")
SANDBOX_TARIFFS = Path(__file__).parent / "static" / "tariffs.toml"
SAVE_EVERY = 5.0  # seconds between saves of the emulated world next to a --db database
WORLD_FORMAT = "ecomet-sandbox-world"  # the kept world file: JSON, never pickle
WORLD_VERSION = 1
# IMAP IDLE tells the bot of a new mail at once; the look every few seconds is a safety net.
MAIL_POLL_INTERVAL = 5.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot sandbox",
        description="Try the whole desk in a browser: the real bot against an emulated Telegram.",
    )
    parser.add_argument(
        "--port", type=int, default=8080, metavar="N", help="port of the page (0: any free)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of the page (a loopback address unless --allow-remote is given)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other machines can reach; the page then asks for an access token "
        "(printed in its address)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="keep the desk in this SQLite file and its chats beside it (default: a temporary one)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open the page in a browser"
    )
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is only reachable from this machine."""
    name = host.strip("[]")
    if is_loopback_name(name):
        return True
    if not name or _is_address(name):
        return False  # "" and 0.0.0.0 are every address of the machine
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(is_loopback_name(str(info[4][0])) for info in found)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_refusal(host: str, allow_remote: bool) -> str | None:
    """Why the page may not be opened on ``host`` (one line), or None when it may."""
    if allow_remote or is_loopback(host):
        return None
    return (
        f"sandbox: --host {host or repr(host)} is reachable from other machines, and anyone "
        "who opens the page acts as every person in it; use 127.0.0.1, or add --allow-remote "
        "to protect the page with an access token"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    refusal = host_refusal(args.host, args.allow_remote)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    temporary: Path | None = None
    if args.db is None:
        temporary = Path(tempfile.mkdtemp(prefix="ecomet-sandbox-"))
        database = temporary / "sandbox.sqlite3"
    else:
        database = args.db.resolve()
        database.parent.mkdir(parents=True, exist_ok=True)
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else "INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Every handled update is logged by aiogram at INFO; in the sandbox that drowns the rest.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    # aiosmtpd logs every SMTP connection and command at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    url = f"sqlite+aiosqlite:///{database}"
    try:
        from bot.modules.loader import ModuleChoice, load

        # The schema, and the installed modules' (README "Modules"): they run here too.
        choice = ModuleChoice()
        modules = load(url, choice.enabled_modules, choice.disabled_modules)
        asyncio.run(serve(args, url, database, modules))
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    except OSError as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0


async def serve(
    args: argparse.Namespace, database_url: str, database: Path, modules: Modules | None = None
) -> None:
    from bot.app import create_i18n, run

    clock = ShiftedClock()
    fake, people = _new_world(clock)
    store = MailStore(clock=lambda: clock.now().timestamp())
    saved = database.with_name(database.name + ".world")
    if args.db is not None and saved.exists() and not load_world(fake, clock, saved, mail=store):
        fake, people = _new_world(clock)
    store.on_change = fake.notify_changed  # the page redraws, the kept world is saved
    # The desk's mailbox: its password is new every run, only the bot is told it.
    password = secrets.token_urlsafe(18)
    mail = LocalMail(store, {SUPPORT_ADDRESS: password})
    await mail.start()
    # The bot's web app serves the Solved / Not solved links of its mails, beside the page.
    web_port = _free_port(args.host, args.port + 1 if args.port else 0)
    public_url = page_address(args.host, web_port, None).rstrip("/")
    api_url = await fake.start()
    settings = load_settings(
        _env_file=None,
        bot_token=SANDBOX_TOKEN,
        staff_chat_id=STAFF_CHAT_ID,
        manager_ids=frozenset(p.id for p in people if p.role == "manager"),
        telegram_api_url=api_url,
        database_url=database_url,
        webhook_url="",
        # Timers are checked every second so a move of the clock shows at once.
        scheduler_interval=1.0,
        # The e-mail channel, against the sandbox's own mail server.
        mail_imap_url=f"imap://{quote(SUPPORT_ADDRESS, safe='')}:{password}"
        f"@127.0.0.1:{mail.imap_port}/INBOX",
        mail_smtp_url=f"smtp://127.0.0.1:{mail.smtp_port}",
        mail_from=f"{SUPPORT_NAME} <{SUPPORT_ADDRESS}>",
        mail_poll_interval=MAIL_POLL_INTERVAL,
        public_url=public_url,
        web_host=args.host,
        web_port=web_port,
        # Two tariffs, and the customers' accounts on them (README "Tariffs").
        tariffs_file=str(SANDBOX_TARIFFS),
    )
    await _import_accounts(settings, clock)
    i18n = create_i18n(settings)
    # Off this machine the page needs a token (in the address it prints): the page lets its
    # visitor act as every person and send files, so nobody else on the network may open it.
    token = secrets.token_urlsafe(24) if args.allow_remote else None
    page = SandboxPage(
        fake,
        people,
        token=token,
        hosts=None if args.allow_remote else (args.host,),
        clock=clock,
        tz=settings.timezone,
        hours=settings.hours,
        translate=lambda text, locale: i18n.gettext(text, locale=locale),
        locales=LOCALES,
        default_locale=settings.default_locale,
        mail_people=mail_people(),
    )
    app = page.application()
    MailPane(
        store,
        mail_people(),
        support=SUPPORT_ADDRESS,
        support_name=SUPPORT_NAME,
        smtp_port=mail.smtp_port,
        clock=clock,
        tz=settings.timezone,
        clock_view=page.clock_view,
    ).add_routes(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    bot = asyncio.create_task(run(settings, clock=clock, modules=modules), name="bot")
    saver = asyncio.create_task(_keep_saving(fake, clock, saved, store)) if args.db else None
    try:
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as error:
            raise OSError(
                f"cannot open the page on {args.host}:{args.port} ({error.strerror}); "
                "choose another port with --port"
            ) from None
        port = runner.addresses[0][1]
        address = page_address(args.host, port, token)
        print(f"Sandbox is ready: {address}", flush=True)
        if token is not None:
            print(
                "The page asks for its token: share this address only with whom you let in; "
                "from another machine use this machine's address with the same ?token=.",
                flush=True,
            )
        everyone = [f"{p.name} ({p.role})" for p in people]
        customers = sum(p.role == "customer" for p in people)
        everyone[customers:customers] = [
            f"{p.name} ({p.role}, e-mail {p.address})" for p in mail_people()
        ]
        print("People: " + ", ".join(everyone) + ". Stop with Ctrl+C.", flush=True)
        if not args.no_browser and _has_display():
            webbrowser.open(address)
        await bot
    finally:
        page.stopping.set()
        fake.notify_changed()
        if not bot.done():
            bot.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bot
        if saver is not None:
            saver.cancel()
            save_world(fake, clock, saved, mail=store)
        await runner.cleanup()
        await mail.stop()
        await fake.stop()


async def _import_accounts(settings: Settings, clock: ShiftedClock) -> None:
    """The demo customers' accounts, as `python -m bot accounts import` would put them (again
    on a kept world: the import changes nothing then)."""
    from bot.db.engine import Database
    from bot.db.uow import transaction
    from bot.services.accounts import import_accounts, parse_accounts

    parsed = parse_accounts(
        ACCOUNTS_CSV, pattern=settings.account_number_pattern, tariffs=settings.tariffs
    )
    assert not parsed.errors, parsed.errors  # the sandbox's own file
    database = Database(settings.database_url)
    try:
        async with transaction(database.writer) as uow:
            await import_accounts(uow.session, parsed.rows, clock.now())
    finally:
        await database.dispose()


def page_address(host: str, port: int, token: str | None) -> str:
    """The address to open: all-interfaces binds are opened through the loopback one."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    query = f"?token={token}" if token is not None else ""
    return f"http://{host}:{port}/{query}"


def _new_world(clock: ShiftedClock) -> tuple[FakeTelegram, list[Person]]:
    # Update ids go on growing from run to run (the bot skips ids it has already handled),
    # also when a kept database meets a world that could not be brought back.
    fake = FakeTelegram(
        SANDBOX_TOKEN, bot_name="e-Comet Support", first_update_id=int(time.time() * 1000)
    )
    # Messages carry the bot's time, so moving the clock shows in the chats too.
    fake.clock = lambda: clock.now().timestamp()
    return fake, populate(fake)


async def _keep_saving(
    fake: FakeTelegram, clock: ShiftedClock, path: Path, mail: MailStore
) -> None:
    while True:
        if await fake.wait_changed(3600):
            await asyncio.sleep(SAVE_EVERY)  # at most one save per interval
            save_world(fake, clock, path, mail=mail)


def save_world(
    fake: FakeTelegram, clock: ShiftedClock, path: Path, *, mail: MailStore | None = None
) -> None:
    """Writes the emulated world, the clock's offset and the mailboxes to ``path`` as JSON
    (atomically)."""
    state: dict[str, Any] = {
        "format": WORLD_FORMAT,
        "version": WORLD_VERSION,
        "clock_offset_seconds": clock.offset.total_seconds(),
        "world": fake.snapshot_json(),
    }
    if mail is not None:
        state["mail"] = mail.snapshot()
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)


def load_world(
    fake: FakeTelegram, clock: ShiftedClock, path: Path, *, mail: MailStore | None = None
) -> bool:
    """Brings back a world :func:`save_world` wrote. A file that is not such a world (damaged,
    or the pickle of older versions, which is never unpickled) is logged and left alone:
    False, and the caller starts an empty world. A world kept before the sandbox had mail
    comes back with empty mailboxes."""
    try:
        state: Any = json.loads(path.read_bytes())
        if not isinstance(state, dict) or state.get("format") != WORLD_FORMAT:
            raise ValueError("not a sandbox world in JSON (older sandboxes kept it as pickle)")
        if state.get("version") != WORLD_VERSION:
            raise ValueError(f"version {state.get('version')!r}, expected {WORLD_VERSION}")
        offset = timedelta(seconds=float(state["clock_offset_seconds"]))
        fake.restore_json(state["world"])
        if mail is not None and "mail" in state:
            mail.restore(state["mail"])
    except Exception as error:  # noqa: BLE001 - a damaged file costs the chats, not the desk
        log.warning(
            "sandbox: the saved chats in %s cannot be read (%s); starting with empty chats",
            path,
            error,
        )
        return False
    clock.offset = offset
    log.info("sandbox: the chats of %s are back", path)
    return True


def _free_port(host: str, wanted: int) -> int:
    """``wanted`` when it is free on ``host``, else any free port (0: any)."""
    for port in (wanted, 0) if wanted else (0,):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            try:
                probe.bind((host.strip("[]"), port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {host} for the bot's mail pages")


def _has_display() -> bool:
    # On a machine without a screen webbrowser falls back to text browsers inside this
    # terminal, which would take it over: only open a page where there is a screen.
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
