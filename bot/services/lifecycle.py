"""Applying a ticket rule to a stored ticket: the one place where a ticket's status changes.

The rule itself is :func:`bot.domain.tickets.transition`; this records it in the history, with
the close reason, the reopen count, and the pauses of the SLA clock while the ticket waits for
the customer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Ticket
from bot.db.repositories import EventRepo, UserRepo
from bot.domain.hours import SupportHours
from bot.domain.tickets import Action, Outcome, Status, TransitionRefused, transition


class Refusal(Exception):  # noqa: N818 - an expected answer to a person, not a bug
    """The action was not done. What to tell the person who asked is data: a sentence (through
    gettext, with named placeholders) and the values to fill in. The edge fills them
    (``refusal_text`` beside the status labels), naming a status in the reader's words."""

    def __init__(self, sentence: str, /, **values: object) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.values = values

    def __str__(self) -> str:
        # Away from the edge (a log line): values as they are, a status by its id.
        return self.sentence.format(**self.values) if self.values else self.sentence


def apply(
    session: AsyncSession,
    ticket: Ticket,
    action: Action,
    *,
    actor_id: int | None,
    role: str,
    now: datetime,
    hours: SupportHours,
) -> Outcome:
    """Move ``ticket`` by ``action`` or raise ``TransitionRefused`` (nothing changed then)."""
    outcome = transition(ticket.status, action)
    events = EventRepo(session)
    events.record(
        ticket.number,
        at=now,
        type="status",
        actor_id=actor_id,
        actor_role=role,
        old=ticket.status.value,
        new=outcome.status.value,
        details={"action": action.value},
    )
    if ticket.status is Status.WAITING_CUSTOMER and ticket.waiting_since is not None:
        paused = hours.working_time_between(ticket.waiting_since, now)
        ticket.paused_seconds = (ticket.paused_seconds or 0) + int(paused.total_seconds())
        ticket.waiting_since = None
    if outcome.status is Status.WAITING_CUSTOMER:
        ticket.waiting_since = now
    if outcome.status is Status.RESOLVED:
        ticket.resolved_at = now
        ticket.reminded_at = None  # a new resolution gets its own reminder
    if outcome.reopened:
        ticket.reopened_count = (ticket.reopened_count or 0) + 1
        ticket.resolved_at = None
    if outcome.close_reason is not None:
        ticket.closed_at = now
        ticket.close_reason = outcome.close_reason
        events.record(
            ticket.number,
            at=now,
            type="close_reason",
            actor_id=actor_id,
            actor_role=role,
            new=outcome.close_reason.value,
        )
    ticket.status = outcome.status
    ticket.updated_at = now
    return outcome


def apply_or_refuse(
    session: AsyncSession,
    ticket: Ticket,
    action: Action,
    *,
    actor_id: int | None,
    role: str,
    now: datetime,
    hours: SupportHours,
    refusal: str,
) -> Outcome:
    """:func:`apply`, or a :class:`Refusal` saying ``refusal`` (its ``{number}`` and
    ``{status}`` the ticket's) to the person who asked."""
    try:
        return apply(session, ticket, action, actor_id=actor_id, role=role, now=now, hours=hours)
    except TransitionRefused:
        raise Refusal(refusal, number=ticket.number, status=ticket.status) from None


async def customer_locale(session: AsyncSession, ticket: Ticket) -> str:
    """The customer's own choice of language, else the one they wrote the request in."""
    customer = await UserRepo(session).get(ticket.customer_id)
    return (customer.locale if customer and customer.locale else None) or ticket.locale
