"""What the services need to know about this desk, derived from the settings once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.domain.hours import SupportHours
from bot.domain.tickets import Priority

DEFAULT_SLA = {
    Priority.P1: timedelta(minutes=30),
    Priority.P2: timedelta(hours=2),
    Priority.P3: timedelta(hours=8),
    Priority.P4: timedelta(days=1),
}


@dataclass(slots=True)
class DeskConfig:
    staff_chat_id: int  # may change at run time: Telegram upgrades a group to a supergroup
    hours: SupportHours
    hours_text: str
    default_locale: str
    staff_is_forum: bool = False  # learned at start from getChat
    sla_targets: dict[Priority, timedelta] = field(default_factory=lambda: dict(DEFAULT_SLA))

    @property
    def tz(self) -> ZoneInfo:
        return self.hours.tz
