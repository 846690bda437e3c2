"""What the staff-side use cases post, as data: the ticket's card, the Resolve prompt, the
bot's word to a staff member about their own message, and what staff actions tell a ticket's
customer.

Each notice is rendered by the ``Renderer`` the service was given (``bot/services/rendering.py``)
in its reader's language: the card in the desk's, a hint in the staff member's, a customer
notice in the customer's. The texts and buttons live at the edge, with the staff side's
other texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.domain.sla import Sla
from bot.domain.tariffs import Tariff
from bot.domain.tickets import Kind, Priority, Status

# -- the staff group ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    """The ticket's card, with the buttons its status allows; ``sla`` for an open ticket."""

    number: int
    kind: Kind
    priority: Priority
    status: Status
    topic: str
    account_number: str
    description: str
    customer_id: int
    customer_name: str
    customer_username: str | None
    customer_locale: str
    customer_email: str | None  # a customer who writes by e-mail: marked ✉️ with the address
    assignee_name: str | None
    line: int
    created_at: datetime
    attachments: int
    reopened: int
    sla: Sla | None
    tz: ZoneInfo
    problem: int | None = None  # the problem this ticket is an incident of (SPEC §13)
    incidents: int = 0  # the tickets linked to this one as their problem
    incidents_open: int = 0
    # SPEC §12: the tariff the ticket was registered under (None: the desk sells none), whether
    # the tariff leaves its kind out, and the organisation of a known account.
    tariff: Tariff | None = None
    outside_tariff: bool = False
    organisation: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvePrompt:
    """Resolve asks for the answer as a reply; ``has_last``: or take the last one sent."""

    number: int
    has_last: bool


@dataclass(frozen=True, slots=True)
class KeptInside:
    """A reply to a staff-side message that may have been meant for the customer."""

    forum: bool


@dataclass(frozen=True, slots=True)
class EditNotCarried:
    """An answer already sent was edited into a note: the customer's copy stays."""


@dataclass(frozen=True, slots=True)
class AlbumAlreadySent:
    """A late note caption on an album that has already gone to the customer."""


class UndeliveredReason(StrEnum):
    BLOCKED = "blocked"  # the customer has blocked the bot
    DELETED = "deleted"  # the customer's account is gone
    REFUSED = "refused"  # anything else Telegram said: shown as it said it


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A message to the ticket's customer could not be delivered."""

    number: int
    reason: UndeliveredReason
    error: str = ""


# -- the customer --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Taken:
    """Someone from support works on the request now."""

    number: int
    agent: str


@dataclass(frozen=True, slots=True)
class InfoAsked:
    """Support needs more from the customer."""

    number: int


@dataclass(frozen=True, slots=True)
class ClosedByStaff:
    number: int


@dataclass(frozen=True, slots=True)
class MailFollowup:
    """A customer's reply by e-mail, relayed to the ticket's topic: who, the subject if it
    changed, their new words (quoted history removed), how many files follow. With
    ``too_large`` (name, bytes): a file too large for Telegram, left in the mailbox."""

    name: str
    address: str
    subject: str
    text: str
    attachments: int
    too_large: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class MailUnreadable:
    """A mail that could not be read: kept in the mailbox, staff told who sent it."""

    sender: str
    error: str
