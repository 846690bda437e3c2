"""Settings of SPEC §7: defaults, formats, and one clear line for each bad setting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings, SettingsError, load_settings
from bot.domain.tickets import Priority

REPO = Path(__file__).resolve().parents[2]
TOKEN = "123456:ABC-def_ghi"

ALL_VARIABLES = [
    "BOT_TOKEN",
    "STAFF_CHAT_ID",
    "MANAGER_IDS",
    "TELEGRAM_API_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "TIMEZONE",
    "SUPPORT_HOURS",
    "DEFAULT_LOCALE",
    "ACCOUNT_NUMBER_PATTERN",
    "AUTO_CLOSE_AFTER",
    "CONFIRM_REMINDER_AFTER",
    "SLA_FIRST_RESPONSE",
    "SUMMARY_TIME",
    "SCHEDULER_INTERVAL",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEB_HOST",
    "WEB_PORT",
    "LOG_LEVEL",
    "DELIVERY_GLOBAL_PER_SECOND",
    "DELIVERY_PRIVATE_PER_SECOND",
    "DELIVERY_GROUP_PER_MINUTE",
    "MAIL_IMAP_URL",
    "MAIL_SMTP_URL",
    "MAIL_FROM",
    "MAIL_POLL_INTERVAL",
    "PUBLIC_URL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env file (the cwd is empty) and none of the settings in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper() in ALL_VARIABLES:
            monkeypatch.delenv(name)


@pytest.fixture
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("STAFF_CHAT_ID", "-1001234567890")


def assert_one_line_naming(error: SettingsError, variable: str) -> None:
    message = str(error)
    assert message, "an empty message names nothing"
    assert "\n" not in message.strip(), f"more than one line: {message!r}"
    assert variable in message, f"{variable} not named in {message!r}"
    assert "Traceback" not in message


# ---------------------------------------------------------------- defaults


@pytest.mark.usefixtures("required")
def test_defaults_of_the_spec() -> None:
    s = load_settings()
    assert s.bot_token.get_secret_value() == TOKEN
    assert s.staff_chat_id == -1001234567890
    assert s.manager_ids == frozenset()
    assert s.telegram_api_url == "https://api.telegram.org"
    assert s.database_url == "sqlite+aiosqlite:///data/support.sqlite3"
    assert s.redis_url == ""
    assert s.timezone == ZoneInfo("Europe/Moscow")
    assert s.support_hours == "09:00-21:00"
    assert s.default_locale == "ru"
    assert s.account_number_pattern.pattern == r"^[0-9]{4,20}$"
    assert s.auto_close_after == timedelta(days=3)
    assert s.confirm_reminder_after == timedelta(days=2)
    assert s.sla_first_response == {
        Priority.P1: timedelta(minutes=30),
        Priority.P2: timedelta(hours=2),
        Priority.P3: timedelta(hours=8),
        Priority.P4: timedelta(days=1),
    }
    assert s.summary_time == time(21, 0)
    assert s.scheduler_interval == 30
    assert s.webhook_url == ""
    assert s.webhook_secret.get_secret_value() == ""
    assert s.web_host == "0.0.0.0"
    assert s.web_port == 8080
    assert s.log_level == "INFO"


@pytest.mark.usefixtures("required")
def test_default_hours_are_09_to_21_in_moscow() -> None:
    hours = load_settings().hours
    assert (hours.start_minute, hours.end_minute) == (9 * 60, 21 * 60)
    assert hours.tz == ZoneInfo("Europe/Moscow")


@pytest.mark.usefixtures("required")
def test_the_token_is_not_shown_in_the_settings_repr() -> None:
    s = load_settings()
    assert TOKEN not in repr(s)
    assert TOKEN not in str(s)


# ---------------------------------------------------------------- values


@pytest.mark.usefixtures("required")
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("60", timedelta(seconds=60)),
        ("259200", timedelta(days=3)),
        ("1.5", timedelta(seconds=1.5)),
        ("P3D", timedelta(days=3)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT45S", timedelta(seconds=45)),
    ],
)
def test_durations_in_seconds_or_iso8601(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: timedelta
) -> None:
    monkeypatch.setenv("AUTO_CLOSE_AFTER", value)
    monkeypatch.setenv("CONFIRM_REMINDER_AFTER", value)
    s = load_settings()
    assert s.auto_close_after == expected
    assert s.confirm_reminder_after == expected


@pytest.mark.usefixtures("required")
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", frozenset()),
        ("42", frozenset({42})),
        ("1,2,3", frozenset({1, 2, 3})),
        (" 10 , 20 ", frozenset({10, 20})),
        ("7,7,", frozenset({7})),
    ],
)
def test_manager_ids(monkeypatch: pytest.MonkeyPatch, value: str, expected: frozenset[int]) -> None:
    monkeypatch.setenv("MANAGER_IDS", value)
    assert load_settings().manager_ids == expected


@pytest.mark.usefixtures("required")
def test_every_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "MANAGER_IDS": "5,6",
        "TELEGRAM_API_URL": "http://127.0.0.1:8081/",
        "DATABASE_URL": "sqlite+aiosqlite:///tmp/x.sqlite3",
        "REDIS_URL": "redis://localhost:6379/0",
        "TIMEZONE": "Europe/Berlin",
        "SUPPORT_HOURS": "08:00-20:00",
        "DEFAULT_LOCALE": "en",
        "ACCOUNT_NUMBER_PATTERN": r"^EC[0-9]{6}$",
        "SLA_FIRST_RESPONSE": "P1=PT15M,P2=PT1H,P3=PT4H,P4=P2D",
        "SUMMARY_TIME": "20:30",
        "SCHEDULER_INTERVAL": "5",
        "WEBHOOK_URL": "https://example.org/hook",
        "WEBHOOK_SECRET": "s3cret",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": "9000",
        "LOG_LEVEL": "debug",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.manager_ids == frozenset({5, 6})
    assert s.telegram_api_url == "http://127.0.0.1:8081"
    assert s.database_url == env["DATABASE_URL"]
    assert s.redis_url == env["REDIS_URL"]
    assert s.timezone == ZoneInfo("Europe/Berlin")
    assert (s.hours.start_minute, s.hours.end_minute, s.hours.tz) == (
        480,
        1200,
        ZoneInfo("Europe/Berlin"),
    )
    assert s.default_locale == "en"
    assert s.account_number_pattern.fullmatch("EC123456")
    assert s.sla_first_response[Priority.P1] == timedelta(minutes=15)
    assert s.sla_first_response[Priority.P4] == timedelta(days=2)
    assert s.summary_time == time(20, 30)
    assert s.scheduler_interval == 5
    assert s.webhook_url == "https://example.org/hook"
    assert s.webhook_secret.get_secret_value() == "s3cret"
    assert s.web_host == "127.0.0.1"
    assert s.web_port == 9000
    assert s.log_level == "DEBUG"


@pytest.mark.usefixtures("required")
def test_lower_case_variable_names_work_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("default_locale", "en")
    assert load_settings().default_locale == "en"


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"BOT_TOKEN={TOKEN}\nSTAFF_CHAT_ID=-1005\nTIMEZONE=Asia/Tokyo\n")
    s = load_settings()
    assert s.staff_chat_id == -1005
    assert s.timezone == ZoneInfo("Asia/Tokyo")


def test_the_environment_wins_over_the_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(f"BOT_TOKEN={TOKEN}\nSTAFF_CHAT_ID=-1005\n")
    monkeypatch.setenv("STAFF_CHAT_ID", "-1007")
    assert load_settings().staff_chat_id == -1007


# ---------------------------------------------------------------- errors


def test_missing_bot_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAFF_CHAT_ID", "-1001")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert_one_line_naming(caught.value, "BOT_TOKEN")


def test_missing_staff_chat_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert_one_line_naming(caught.value, "STAFF_CHAT_ID")


@pytest.mark.usefixtures("required")
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BOT_TOKEN", "not a token"),
        ("BOT_TOKEN", ""),
        ("STAFF_CHAT_ID", "abc"),
        ("STAFF_CHAT_ID", ""),
        ("MANAGER_IDS", "1,two"),
        ("TELEGRAM_API_URL", "api.telegram.org"),
        ("TIMEZONE", "Mars/Base"),
        ("TIMEZONE", ""),
        ("SUPPORT_HOURS", "late"),
        ("SUPPORT_HOURS", "21:00-09:00"),
        ("SUPPORT_HOURS", "9-21"),
        ("SUPPORT_HOURS", "25:00-26:00"),
        ("DEFAULT_LOCALE", "de"),
        ("ACCOUNT_NUMBER_PATTERN", "("),
        ("AUTO_CLOSE_AFTER", "soon"),
        ("CONFIRM_REMINDER_AFTER", "P2X"),
        ("SLA_FIRST_RESPONSE", "P1=x"),
        ("SLA_FIRST_RESPONSE", "P1=PT30M"),  # P2..P4 missing
        ("SLA_FIRST_RESPONSE", "P9=PT30M,P1=PT30M,P2=PT2H,P3=PT8H,P4=P1D"),
        ("SUMMARY_TIME", "25:00"),
        ("SCHEDULER_INTERVAL", "0"),
        ("SCHEDULER_INTERVAL", "often"),
        ("WEB_PORT", "70000"),
        ("LOG_LEVEL", "loud"),
        ("MAIL_IMAP_URL", "https://mail.example.org"),
        ("MAIL_IMAP_URL", "smtps://user:pw@mail.example.org"),
        ("MAIL_IMAP_URL", "imaps://user:pw@mail.example.org:port/INBOX"),
        ("MAIL_SMTP_URL", "imaps://user:pw@mail.example.org"),
        ("MAIL_FROM", "support"),
        ("MAIL_POLL_INTERVAL", "0"),
        ("PUBLIC_URL", "bot.example.org"),
    ],
)
def test_malformed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert_one_line_naming(caught.value, variable)


@pytest.mark.usefixtures("required")
def test_webhook_url_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://example.org/hook")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert_one_line_naming(caught.value, "WEBHOOK_SECRET")
    assert "WEBHOOK_URL" in str(caught.value)


@pytest.mark.usefixtures("required")
def test_webhook_url_with_a_secret_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://example.org/hook")
    monkeypatch.setenv("WEBHOOK_SECRET", "abc")
    assert load_settings().webhook_url == "https://example.org/hook"


def test_settings_error_does_not_chain_the_pydantic_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_load_settings_overrides() -> None:
    s = load_settings(bot_token=TOKEN, staff_chat_id=-42)
    assert isinstance(s, Settings)
    assert s.staff_chat_id == -42


# ---------------------------------------------------------------- python -m bot


def test_python_m_bot_without_configuration_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "BOT_TOKEN" in lines[0]
    assert "Traceback" not in result.stderr
    assert re.search(r"error", lines[0], re.IGNORECASE)
    # It stopped before touching anything: no database directory was created.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("required")
def test_the_mail_channel_needs_smtp_and_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_IMAP_URL", "imaps://support%40e-comet.io:p%40ss@imap.example.org")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert_one_line_naming(caught.value, "MAIL_SMTP_URL")
    monkeypatch.setenv("MAIL_SMTP_URL", "smtp+starttls://support%40e-comet.io:pw@smtp.example.org")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert_one_line_naming(caught.value, "MAIL_FROM")
    monkeypatch.setenv("MAIL_FROM", "e-Comet Support <support@e-comet.io>")
    settings = load_settings()
    assert settings.mail_enabled
    imap, smtp = settings.imap, settings.smtp
    assert (imap.host, imap.port, imap.user, imap.password, imap.tls, imap.folder) == (
        "imap.example.org",
        993,
        "support@e-comet.io",
        "p@ss",
        "tls",
        "INBOX",
    )
    assert (smtp.host, smtp.port, smtp.tls) == ("smtp.example.org", 587, "starttls")
    # The password never shows in the settings' text (logs, tracebacks).
    assert "p%40ss" not in repr(settings) and "p@ss" not in repr(settings)


@pytest.mark.usefixtures("required")
def test_without_a_mailbox_there_is_no_mail_channel() -> None:
    assert not load_settings().mail_enabled
