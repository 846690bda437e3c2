"""Settings of SPEC §7: one pydantic-settings class, read once in ``main()``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from email.utils import parseaddr
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.hours import SupportHours
from bot.domain.tariffs import TariffError, Tariffs, builtin, parse_tariffs
from bot.domain.tickets import Priority

LOCALES = ("ru", "en")
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///data/support.sqlite3"


def _parse_sla(text: str) -> dict[Priority, timedelta]:
    from pydantic import TypeAdapter

    adapter = TypeAdapter(timedelta)
    targets: dict[Priority, timedelta] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or name not in Priority.__members__:
            raise ValueError(f"expected P1=PT30M,P2=PT2H,..., got {part!r}")
        targets[Priority[name]] = adapter.validate_python(value.strip())
    missing = [p.name for p in Priority if p not in targets]
    if missing:
        raise ValueError(f"no target for {', '.join(missing)}")
    return targets


def read_tariffs(
    path: str, hours: SupportHours, first_response: dict[Priority, timedelta]
) -> Tariffs:
    """The tariffs of ``TARIFFS_FILE`` (SPEC §12); empty path: the built-in one."""
    if not path:
        return builtin(hours, first_response)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TariffError(f"cannot read {path}: {exc}") from None
    return parse_tariffs(text, tz=hours.tz, hours=hours, first_response=first_response)


def split_names(text: str) -> frozenset[str] | None:
    """``a, b`` as names; ``none``: no name; an empty value is no choice at all (None)."""
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    if names == {"none"}:
        return frozenset()
    return names or None


@dataclass(frozen=True, slots=True)
class MailServer:
    """A mail server from ``MAIL_IMAP_URL`` / ``MAIL_SMTP_URL`` (SPEC §7)."""

    host: str
    port: int
    user: str
    password: str
    tls: str  # "tls" (from the first byte), "starttls", or "none" (loopback, tests)
    folder: str = "INBOX"


_MAIL_SCHEMES = {
    "imap": ("imap", "none", 143),
    "imaps": ("imap", "tls", 993),
    "smtp": ("smtp", "none", 25),
    "smtps": ("smtp", "tls", 465),
    "smtp+starttls": ("smtp", "starttls", 587),
}


def parse_mail_url(url: str, protocol: str) -> MailServer:
    """``imaps://user:password@host:993/INBOX`` and the like; user and password may be
    percent-encoded (an address as the user name: ``support%40e-comet.io``)."""
    parts = urlsplit(url)
    scheme = _MAIL_SCHEMES.get(parts.scheme.lower())
    if scheme is None or scheme[0] != protocol:
        names = ", ".join(f"{name}://" for name, s in _MAIL_SCHEMES.items() if s[0] == protocol)
        raise ValueError(f"expected a URL starting with one of {names}")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    try:
        port = parts.port or scheme[2]
    except ValueError as exc:
        raise ValueError("the URL's port is not a number") from exc
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return MailServer(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        tls=scheme[1],
        folder=folder,
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr
    staff_chat_id: int
    manager_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = DEFAULT_SQLITE_URL
    redis_url: str = ""
    timezone: ZoneInfo = Field(default=ZoneInfo("Europe/Moscow"))
    support_hours: str = "09:00-21:00"
    default_locale: str = "ru"
    account_number_pattern: re.Pattern[str] = re.compile(r"^[0-9]{4,20}$")
    auto_close_after: timedelta = timedelta(days=3)
    confirm_reminder_after: timedelta = timedelta(days=2)
    sla_first_response: Annotated[dict[Priority, timedelta], NoDecode] = Field(
        default_factory=lambda: _parse_sla("P1=PT30M,P2=PT2H,P3=PT8H,P4=P1D")
    )
    # Read after TIMEZONE, SUPPORT_HOURS and SLA_FIRST_RESPONSE: a tariff leaves out what they say.
    tariffs_file: str = ""
    summary_time: time = time(21, 0)
    scheduler_interval: float = Field(default=30.0, gt=0)
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    web_host: str = "0.0.0.0"
    web_port: int = Field(default=8080, ge=0, le=65535)
    log_level: str = "INFO"
    # Telegram's sending limits; change them only for a self-hosted Bot API server or a test.
    delivery_global_per_second: float = Field(default=30.0, gt=0)
    delivery_private_per_second: float = Field(default=1.0, gt=0)
    delivery_group_per_minute: float = Field(default=20.0, gt=0)
    # Limits per customer (SPEC §4): open tickets at once, and the pace above which a customer
    # is asked to slow down (nothing is dropped: the extra messages reach staff joined).
    max_open_tickets: int = Field(default=5, ge=1, le=1000)
    customer_messages_per_minute: int = Field(default=20, ge=1, le=10_000)
    # The e-mail channel (SPEC §10): off while MAIL_IMAP_URL is empty.
    mail_imap_url: SecretStr = SecretStr("")
    mail_smtp_url: SecretStr = SecretStr("")
    mail_from: str = ""
    mail_poll_interval: float = Field(default=30.0, gt=0)
    public_url: str = ""
    # Installed modules (SPEC §12, bot/modules): which load. None: every one found.
    enabled_modules: Annotated[frozenset[str] | None, NoDecode] = None
    disabled_modules: Annotated[frozenset[str], NoDecode] = frozenset()
    # Seconds before a module's failed hook gets its event again; then the event is skipped.
    module_hook_retry_delays: Annotated[tuple[float, ...], NoDecode] = (10.0, 60.0, 300.0, 900.0)

    @field_validator("enabled_modules", "disabled_modules", mode="before")
    @classmethod
    def _module_names(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        names = split_names(value)
        return frozenset() if names is None and info.field_name == "disabled_modules" else names

    @field_validator("module_hook_retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(float(part) for part in value.split(",") if part.strip())
        if any(delay < 0 for delay in value):
            raise ValueError("expected seconds, e.g. 10,60,300")
        return value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"\d+:[\w-]+", value.get_secret_value()):
            raise ValueError("expected a token like 123456:ABC-DEF from @BotFather")
        return value

    @field_validator("manager_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("auto_close_after", "confirm_reminder_after", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        # Environment values are strings; "60" means seconds, as SPEC §7 allows.
        if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            return float(value)
        return value

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("support_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        SupportHours.parse(value, ZoneInfo("UTC"))
        return value

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"expected one of {', '.join(LOCALES)}")
        return value

    @field_validator("sla_first_response", mode="before")
    @classmethod
    def _sla(cls, value: Any) -> Any:
        return _parse_sla(value) if isinstance(value, str) else value

    @field_validator("tariffs_file")
    @classmethod
    def _tariffs(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        data = info.data
        if value and {"timezone", "support_hours", "sla_first_response"} <= set(data):
            hours = SupportHours.parse(data["support_hours"], data["timezone"])
            read_tariffs(value, hours, data["sla_first_response"])  # a bad file stops the start
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http(s) URL")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URL is set")
        return self

    @field_validator("mail_imap_url")
    @classmethod
    def _imap_url(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            parse_mail_url(value.get_secret_value(), "imap")
        return value

    @field_validator("mail_smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            parse_mail_url(value.get_secret_value(), "smtp")
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        if value and "@" not in parseaddr(value)[1]:
            raise ValueError("expected an address, e.g. e-Comet Support <support@e-comet.io>")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _mail_needs_smtp(self) -> Settings:
        if self.mail_imap_url.get_secret_value():
            if not self.mail_smtp_url.get_secret_value():
                raise ValueError("MAIL_SMTP_URL is required when MAIL_IMAP_URL is set")
            if not self.mail_from:
                raise ValueError("MAIL_FROM is required when MAIL_IMAP_URL is set")
        return self

    @property
    def mail_enabled(self) -> bool:
        return bool(self.mail_imap_url.get_secret_value())

    @property
    def imap(self) -> MailServer:
        return parse_mail_url(self.mail_imap_url.get_secret_value(), "imap")

    @property
    def smtp(self) -> MailServer:
        return parse_mail_url(self.mail_smtp_url.get_secret_value(), "smtp")

    @property
    def hours(self) -> SupportHours:
        return SupportHours.parse(self.support_hours, self.timezone)

    @property
    def tariffs(self) -> Tariffs:
        return read_tariffs(self.tariffs_file, self.hours, self.sla_first_response)


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
        reason = (
            "is required"
            if error["type"] == "missing"
            else error["msg"].removeprefix("Value error, ")
        )
        raise SettingsError(f"Configuration error: {name}: {reason}") from None
