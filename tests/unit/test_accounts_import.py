"""``python -m bot accounts import FILE.csv`` (SPEC §12): idempotent, every bad line reported
with its number and reason, nothing imported when any line is bad."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.__main__ import main as bot_main
from bot.accounts import main as accounts_cli
from bot.config import Settings, load_settings
from bot.db.engine import Database, migrate
from bot.db.models import Account, Organisation
from bot.domain.hours import SupportHours
from bot.domain.tariffs import parse_tariffs
from bot.domain.tickets import Priority
from bot.services.accounts import account_info, parse_accounts

ROOT = Path(__file__).resolve().parents[2]
TARIFFS = """
default = "standard"
[tariffs.standard]
name = "Standard"
[tariffs.premium]
name = { ru = "Премиум", en = "Premium" }
hours = "24/7"
boost = 1
"""


@pytest.fixture
def url(backend_url: str) -> str:
    migrate(backend_url)  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    return backend_url


@pytest.fixture
def settings(url: str, tmp_path: Path) -> Settings:
    tariffs = tmp_path / "tariffs.toml"
    tariffs.write_text(TARIFFS, encoding="utf-8")
    return load_settings(
        bot_token="1:abc", staff_chat_id=-1, database_url=url, tariffs_file=str(tariffs)
    )


def write(tmp_path: Path, text: str, name: str = "accounts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def table(url: str) -> dict[str, tuple[str, str]]:
    """account → (organisation, tariff), as stored."""

    async def read() -> dict[str, tuple[str, str]]:
        database = Database(url)
        try:
            async with database.reader() as session:
                rows = await session.execute(
                    select(Account.number, Organisation.name, Organisation.tariff).join(
                        Organisation, Organisation.id == Account.organisation_id
                    )
                )
                return {number: (name, tariff) for number, name, tariff in rows.all()}
        finally:
            await database.dispose()

    return asyncio.run(read())


GOOD = """account_number,organisation,tariff
10000001,Romashka LLC,premium
10000002,Romashka LLC,premium
20000001,Vasilek JSC,standard
"""


def test_an_import_adds_then_changes_nothing_then_updates(
    settings: Settings, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    assert accounts_cli(["import", str(path)], settings) == 0
    out = capsys.readouterr().out
    assert "accounts: 3 added, 0 updated, 0 unchanged" in out
    assert "organisations: 2 added, 0 with a new tariff" in out
    expected = {
        "10000001": ("Romashka LLC", "premium"),
        "10000002": ("Romashka LLC", "premium"),
        "20000001": ("Vasilek JSC", "standard"),
    }
    assert table(url) == expected

    # The same file again: nothing changes.
    assert accounts_cli(["import", str(path)], settings) == 0
    out = capsys.readouterr().out
    assert "accounts: 0 added, 0 updated, 3 unchanged" in out
    assert "organisations: 0 added, 0 with a new tariff" in out
    assert table(url) == expected

    # Another file: Vasilek buys premium, an account moves, one is new; the rest stay.
    later = write(
        tmp_path,
        "account_number;organisation;tariff\n"  # a spreadsheet's semicolons
        "20000001;Vasilek JSC;premium\n"
        "10000002;Vasilek JSC;premium\n"
        "\n"
        "3000-0001;  Lyutik   Ltd ;standard\n",
        "later.csv",
    )
    assert accounts_cli(["import", str(later)], settings) == 0
    out = capsys.readouterr().out
    assert "accounts: 1 added, 1 updated, 1 unchanged" in out
    assert "organisations: 1 added, 1 with a new tariff" in out
    assert table(url) == {
        "10000001": ("Romashka LLC", "premium"),
        "10000002": ("Vasilek JSC", "premium"),
        "20000001": ("Vasilek JSC", "premium"),
        "30000001": ("Lyutik Ltd", "standard"),
    }


def test_bad_lines_are_all_reported_and_nothing_is_imported(
    settings: Settings, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "account_number,organisation,tariff\n"
        "10000001,Romashka LLC,premium\n"  # good, and still not imported
        "12,Short Ltd,standard\n"  # line 3
        "10000003,Gold Ltd,gold\n"  # line 4
        "10000001,Romashka LLC,premium\n"  # line 5: twice
        "10000004,Romashka LLC,standard\n"  # line 6: another tariff for Romashka
        "10000005,,standard\n"  # line 7
        "10000006,Too,many,fields\n"  # line 8
        '"10000007","Multi\nline Ltd",standard\n'  # lines 9-10: good
        "abc,Letters Ltd,standard\n",  # line 11
    )
    assert accounts_cli(["import", str(path)], settings) == 1
    err = capsys.readouterr().err
    lines = [line.removeprefix(f"{path}: ") for line in err.splitlines()]
    assert lines[:-1] == [
        "line 3: '12' is not an account number (ACCOUNT_NUMBER_PATTERN)",
        "line 4: unknown tariff 'gold' (TARIFFS_FILE has premium, standard)",
        "line 5: account 10000001 is already on line 2",
        "line 6: 'Romashka LLC' has tariff 'premium' on line 2",
        "line 7: the organisation is empty",
        "line 8: expected 3 fields, got 4",
        "line 11: 'abc' is not an account number (ACCOUNT_NUMBER_PATTERN)",
    ]
    assert lines[-1] == "Nothing imported: 7 bad line(s). Fix them and run it again."
    assert table(url) == {}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "line 1: expected a header: account_number,organisation,tariff"),
        (
            "number,organisation,tariff\n1234,A,standard\n",
            "line 1: no column account_number (expected account_number,organisation,tariff)",
        ),
    ],
)
def test_a_file_without_its_header_is_refused(text: str, reason: str) -> None:
    hours = SupportHours.parse("09:00-21:00", ZoneInfo("Europe/Moscow"))
    targets = dict.fromkeys(Priority, timedelta(hours=1))
    tariffs = parse_tariffs(TARIFFS, tz=hours.tz, hours=hours, first_response=targets)
    parsed = parse_accounts(text, pattern=re.compile(r"^[0-9]{4,20}$"), tariffs=tariffs)
    assert parsed.rows == ()
    assert [str(error) for error in parsed.errors] == [reason]


def test_the_command_line_and_its_failures(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert accounts_cli([], settings) == 2
    assert "usage: python -m bot accounts import FILE.csv" in capsys.readouterr().err
    assert accounts_cli(["import", str(tmp_path / "missing.csv")], settings) == 2
    assert "Cannot read" in capsys.readouterr().err
    # Through `python -m bot`, with the settings from the environment.
    monkeypatch.setenv("BOT_TOKEN", "1:abc")
    monkeypatch.setenv("STAFF_CHAT_ID", "-1")
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TARIFFS_FILE", settings.tariffs_file)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    assert bot_main(["accounts", "import", str(write(tmp_path, GOOD))]) == 0
    assert "3 added" in capsys.readouterr().out
    monkeypatch.setenv("TARIFFS_FILE", str(tmp_path / "none.toml"))
    assert bot_main(["accounts", "import", str(write(tmp_path, GOOD))]) == 2
    assert "Configuration error: TARIFFS_FILE: cannot read" in capsys.readouterr().err


def test_a_known_account_has_its_organisation_and_tariff(
    settings: Settings, url: str, tmp_path: Path
) -> None:
    assert accounts_cli(["import", str(write(tmp_path, GOOD))], settings) == 0

    async def look(number: str):  # type: ignore[no-untyped-def]
        database = Database(url)
        try:
            async with database.reader() as session:
                return await account_info(session, number, settings.tariffs)
        finally:
            await database.dispose()

    known = asyncio.run(look("10000002"))
    assert known is not None
    assert (known.organisation, known.tariff.code, known.tariff.name("ru")) == (
        "Romashka LLC",
        "premium",
        "Премиум",
    )
    assert asyncio.run(look("99999999")) is None
    assert asyncio.run(look("")) is None


def test_the_example_files_in_the_repository_import_cleanly() -> None:
    settings = load_settings(
        bot_token="1:abc",
        staff_chat_id=-1,
        tariffs_file=str(ROOT / "deploy" / "tariffs.example.toml"),
    )
    text = (ROOT / "deploy" / "accounts.example.csv").read_text(encoding="utf-8")
    parsed = parse_accounts(text, pattern=settings.account_number_pattern, tariffs=settings.tariffs)
    assert parsed.errors == ()
    assert [(r.line, r.organisation, r.tariff) for r in parsed.rows][-1] == (
        5,
        "Lyutik & Co, Ltd",
        "basic",
    )


def test_the_dialog_says_what_it_recognised_in_both_languages(
    settings: Settings, url: str, tmp_path: Path
) -> None:
    from aiogram.utils.i18n import I18n

    from bot.domain.tariffs import builtin
    from bot.views.tickets import account_recognised

    assert accounts_cli(["import", str(write(tmp_path, GOOD))], settings) == 0
    plain = builtin(settings.hours, settings.sla_first_response)

    async def look(tariffs):  # type: ignore[no-untyped-def]
        database = Database(url)
        try:
            async with database.reader() as session:
                return await account_info(session, "10000001", tariffs)
        finally:
            await database.dispose()

    sold, unsold = asyncio.run(look(settings.tariffs)), asyncio.run(look(plain))
    assert unsold is not None and unsold.tariff is None  # no TARIFFS_FILE: no tariff to name
    i18n = I18n(path=ROOT / "locales", default_locale="en", domain="messages")
    with i18n.context(), i18n.use_locale("en"):
        assert account_recognised(sold, "en") == (
            "✅ Account 10000001 — Romashka LLC, tariff Premium."
        )
        assert account_recognised(unsold, "en") == "✅ Account 10000001 — Romashka LLC."
    with i18n.context(), i18n.use_locale("ru"):
        assert account_recognised(sold, "ru") == (
            "✅ Лицевой счёт 10000001 — Romashka LLC, тариф Премиум."
        )
