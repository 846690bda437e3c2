"""The module's settings: ``OUTGOING_WEBHOOK_*`` in the environment or ``.env``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.modules.api import EventKind


class WebhookSettings(BaseSettings):
    # Not WEBHOOK_: the desk's WEBHOOK_URL is where Telegram sends it updates.
    model_config = SettingsConfigDict(
        env_prefix="OUTGOING_WEBHOOK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    url: str = ""
    secret: SecretStr = SecretStr("")
    events: Annotated[frozenset[EventKind], NoDecode] = frozenset(EventKind)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_base: float = Field(default=5.0, gt=0)  # seconds; doubles with each failed try
    retry_max: float = Field(default=3600.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)  # seconds between looks at an idle queue

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http(s) URL")
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = [part.strip() for part in value.split(",") if part.strip()]
            return frozenset(EventKind(name) for name in names) if names else frozenset(EventKind)
        return value

    @model_validator(mode="after")
    def _secret_with_url(self) -> WebhookSettings:
        if self.url and not self.secret.get_secret_value():
            raise ValueError("OUTGOING_WEBHOOK_SECRET is required with OUTGOING_WEBHOOK_URL")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url)
