"""What the services need to know about this desk, derived from the settings once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.delivery.outbox import COALESCE_GRACE
from bot.domain.hours import SupportHours
from bot.domain.tariffs import Tariff, Tariffs, builtin
from bot.domain.tickets import Kind, Priority

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
    # SPEC §12; None: the built-in one, the hours and targets above.
    tariffs: Tariffs | None = None
    # How long a coalesced relay waits for more of the customer's messages before it may go.
    coalesce_grace: timedelta = COALESCE_GRACE

    def __post_init__(self) -> None:
        if self.tariffs is None:
            self.tariffs = builtin(self.hours, self.sla_targets)

    @property
    def tz(self) -> ZoneInfo:
        return self.hours.tz

    @property
    def book(self) -> Tariffs:
        assert self.tariffs is not None  # set in __post_init__
        return self.tariffs

    def terms(self, tariff: str | None, kind: Kind) -> Tariff:
        """Whose hours and SLA targets a ticket (its tariff code and kind) is served on."""
        return self.book.terms(tariff, kind)

    def hours_text_of(self, terms: Tariff) -> str:
        """The support hours a customer is told (``09:00–21:00``, ``24/7``)."""
        return terms.hours.text if self.book.from_file else self.hours_text
