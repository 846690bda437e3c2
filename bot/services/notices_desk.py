"""What the request, resolution and manager use cases post for the desk's own people, as data:
notes about a ticket for staff, and the daily summary for managers.

Rendered in the desk's language by the ``Renderer`` the service was given (implemented at the
edge, where the texts live).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.domain.sla import Sla
from bot.services.reports import DayReport


@dataclass(frozen=True, slots=True)
class CoalescedHeader:
    """The head of a customer's messages joined into one: who wrote, how many, and when."""

    name: str
    count: int
    first: datetime
    last: datetime
    tz: ZoneInfo


@dataclass(frozen=True, slots=True)
class CoalescedEdit:
    """A customer edited a message that reached staff joined with others: its new text
    (``html_text``: already HTML, the customer's entities kept)."""

    name: str
    html_text: str


@dataclass(frozen=True, slots=True)
class DisputeReason:
    """The customer says the ticket is not solved, and why."""

    number: int
    reason: str


@dataclass(frozen=True, slots=True)
class CustomerClosed:
    number: int
    reason: str


@dataclass(frozen=True, slots=True)
class LowRating:
    number: int
    score: int
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class RatingComment:
    number: int
    comment: str


@dataclass(frozen=True, slots=True)
class SlaAlert:
    """A ticket nears or breaches its first-response target."""

    number: int
    sla: Sla


@dataclass(frozen=True, slots=True)
class DailySummary:
    """A manager's summary of one day (its chart goes as a photo of its own)."""

    report: DayReport
