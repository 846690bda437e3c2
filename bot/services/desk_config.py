"""What the services need to know about this desk, derived from the settings once."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.domain.hours import SupportHours


@dataclass(slots=True)
class DeskConfig:
    staff_chat_id: int  # may change at run time: Telegram upgrades a group to a supergroup
    hours: SupportHours
    hours_text: str
    default_locale: str
    staff_is_forum: bool = False  # learned at start from getChat

    @property
    def tz(self) -> ZoneInfo:
        return self.hours.tz
