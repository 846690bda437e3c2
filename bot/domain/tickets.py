"""Ticket lifecycle rules of the support regulation (SPEC §3).

Every change of a ticket's status goes through :func:`transition`, which either returns the
new status or raises :class:`TransitionRefused`. The table below is the whole lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Kind(StrEnum):
    INCIDENT = "incident"  # a failure for one user
    PROBLEM = "problem"  # a failure that stopped the service or made it unusable
    SERVICE = "service"  # a request for information
    DEVELOPMENT = "development"  # a change or a new feature


class Priority(IntEnum):
    P1 = 1  # critical
    P2 = 2  # high
    P3 = 3  # normal
    P4 = 4  # low


DEFAULT_PRIORITY: dict[Kind, Priority] = {
    Kind.PROBLEM: Priority.P1,
    Kind.INCIDENT: Priority.P2,
    Kind.SERVICE: Priority.P3,
    Kind.DEVELOPMENT: Priority.P4,
}


def default_priority(kind: Kind) -> Priority:
    """Problems that block the customer go first."""
    return DEFAULT_PRIORITY[kind]


class Status(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES: frozenset[Status] = frozenset(set(Status) - {Status.CLOSED})


class Action(StrEnum):
    TAKE = "take"  # staff takes or assigns the ticket
    ASK_INFO = "ask_info"  # staff asks the customer for more information
    CUSTOMER_ANSWERED = "customer_answered"  # the customer answers a request for information
    RESOLVE = "resolve"  # staff delivers an answer
    CONFIRM = "confirm"  # the customer confirms the answer
    DISPUTE = "dispute"  # the customer disputes the answer with a reason
    AUTO_CLOSE = "auto_close"  # no answer from the customer for AUTO_CLOSE_AFTER
    CLOSE_BY_STAFF = "close_by_staff"
    CLOSE_BY_CUSTOMER = "close_by_customer"
    # Staff's album that took the ticket turned out to be a note (Telegram put its "!" caption
    # on a later part): the take it caused is given back before anything reached the customer.
    TAKE_BACK = "take_back"


class CloseReason(StrEnum):
    CONFIRMED = "confirmed"
    AUTO = "auto"
    BY_CUSTOMER = "by_customer"
    BY_STAFF = "by_staff"


_CLOSE_REASON: dict[Action, CloseReason] = {
    Action.CONFIRM: CloseReason.CONFIRMED,
    Action.AUTO_CLOSE: CloseReason.AUTO,
    Action.CLOSE_BY_CUSTOMER: CloseReason.BY_CUSTOMER,
    Action.CLOSE_BY_STAFF: CloseReason.BY_STAFF,
}

# The whole lifecycle: (from status, action) -> to status. Anything missing is refused.
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.NEW, Action.TAKE): Status.IN_PROGRESS,
    (Status.NEW, Action.CLOSE_BY_STAFF): Status.CLOSED,
    (Status.NEW, Action.CLOSE_BY_CUSTOMER): Status.CLOSED,
    (Status.IN_PROGRESS, Action.TAKE_BACK): Status.NEW,
    (Status.IN_PROGRESS, Action.ASK_INFO): Status.WAITING_CUSTOMER,
    (Status.IN_PROGRESS, Action.RESOLVE): Status.RESOLVED,
    (Status.IN_PROGRESS, Action.CLOSE_BY_STAFF): Status.CLOSED,
    (Status.IN_PROGRESS, Action.CLOSE_BY_CUSTOMER): Status.CLOSED,
    (Status.WAITING_CUSTOMER, Action.CUSTOMER_ANSWERED): Status.IN_PROGRESS,
    (Status.WAITING_CUSTOMER, Action.RESOLVE): Status.RESOLVED,
    (Status.WAITING_CUSTOMER, Action.CLOSE_BY_STAFF): Status.CLOSED,
    (Status.WAITING_CUSTOMER, Action.CLOSE_BY_CUSTOMER): Status.CLOSED,
    (Status.RESOLVED, Action.CONFIRM): Status.CLOSED,
    (Status.RESOLVED, Action.DISPUTE): Status.IN_PROGRESS,
    (Status.RESOLVED, Action.AUTO_CLOSE): Status.CLOSED,
}


class TransitionRefused(Exception):  # noqa: N818 - a refusal is an expected outcome, not a bug
    """The action is not allowed in the ticket's current status; nothing was changed."""

    def __init__(self, status: Status, action: Action) -> None:
        super().__init__(f"{action.value} is not allowed for a ticket in status {status.value}")
        self.status = status
        self.action = action


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a legal action does to a ticket."""

    status: Status
    close_reason: CloseReason | None = None
    reopened: bool = False


def transition(status: Status, action: Action) -> Outcome:
    """Apply ``action`` to a ticket in ``status`` or refuse it."""
    target = TRANSITIONS.get((status, action))
    if target is None:
        raise TransitionRefused(status, action)
    return Outcome(
        status=target,
        close_reason=_CLOSE_REASON.get(action) if target is Status.CLOSED else None,
        reopened=action is Action.DISPUTE,
    )


def allowed_actions(status: Status) -> frozenset[Action]:
    return frozenset(action for (source, action) in TRANSITIONS if source is status)


def can_reassign(status: Status) -> bool:
    """Assigning, reassigning and changing priority or line: every status but closed."""
    return status is not Status.CLOSED


def is_open(status: Status) -> bool:
    return status in OPEN_STATUSES
