"""Settings of SPEC §7: one pydantic-settings class, read once in ``main()``."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.hours import SupportHours
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

    @property
    def hours(self) -> SupportHours:
        return SupportHours.parse(self.support_hours, self.timezone)


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
