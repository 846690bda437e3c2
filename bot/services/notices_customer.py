"""What the request and resolution use cases tell a ticket's customer, as data.

Each notice is rendered in the customer's language by the ``Renderer`` the service was given
(``bot/services/rendering.py``), implemented at the edge with the texts and buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain.tickets import Kind, Priority, Status


@dataclass(frozen=True, slots=True)
class Registered:
    """The request is registered; ``opens_at``: support is closed now and opens then."""

    number: int
    topic: str
    kind: Kind
    priority: Priority
    opens_at: datetime | None
    now: datetime
    hours_text: str
    tz: ZoneInfo


@dataclass(frozen=True, slots=True)
class AfterHours:
    """A follow-up arrived out of support hours (told once per ticket)."""

    number: int
    opens_at: datetime
    now: datetime
    hours_text: str
    tz: ZoneInfo


@dataclass(frozen=True, slots=True)
class ConfirmQuestion:
    """Support answered: Solved / Not solved, closing by itself after ``auto_close_after``."""

    number: int
    auto_close_after: timedelta


@dataclass(frozen=True, slots=True)
class StillResolved:
    """The customer wrote to a resolved ticket: relayed, and the same question again."""

    number: int


@dataclass(frozen=True, slots=True)
class Reminder:
    """The question once more, ``left`` before the ticket closes by itself."""

    number: int
    left: timedelta


@dataclass(frozen=True, slots=True)
class Reopened:
    number: int


@dataclass(frozen=True, slots=True)
class ClosedConfirmed:
    number: int


@dataclass(frozen=True, slots=True)
class ClosedAuto:
    number: int


@dataclass(frozen=True, slots=True)
class ClosedByCustomer:
    number: int


@dataclass(frozen=True, slots=True)
class AskRating:
    number: int


@dataclass(frozen=True, slots=True)
class MailReceived:
    """The acknowledgement of a request by e-mail: the ticket's number (in the subject too)
    and, when no account number was found in the mail, the question for it."""

    registered: Registered
    account_missing: bool


@dataclass(frozen=True, slots=True)
class MailTooManyOpen:
    """A new request by e-mail while ``limit`` are open already: which ones."""

    numbers: list[int]
    limit: int


@dataclass(frozen=True, slots=True)
class MailPage:
    """What a link in a mail opens (SPEC §10): the question (``ask``), what the press did
    (``done``), or why it does nothing now (``stale``: the ticket moved on; ``invalid``: a
    forged or broken link). ``action``: solved / not-solved / rate-N."""

    number: int
    action: str
    state: str
    status: Status | None = None
    reason_missing: bool = False


@dataclass(frozen=True, slots=True)
class MailFilesTooLarge:
    """Files of a customer's mail too large to reach staff (over ``limit_mb``): named, so the
    customer can send them another way."""

    number: int
    names: list[str]
    limit_mb: int
