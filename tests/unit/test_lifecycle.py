"""Property: any sequence of actions applied to a ticket keeps its history consistent with it
(SPEC §3: one status, every change recorded old → new, closed is final, every transition legal)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.db.models import Ticket, TicketEvent
from bot.domain.hours import SupportHours
from bot.domain.tickets import TRANSITIONS, Action, Kind, Priority, Status, TransitionRefused
from bot.services.lifecycle import apply

HOURS = SupportHours.parse("09:00-21:00", ZoneInfo("Europe/Moscow"))


class History:
    """Where ``apply`` records events (it only ever adds them)."""

    def __init__(self) -> None:
        self.events: list[TicketEvent] = []

    def add(self, item: Any) -> None:
        self.events.append(item)


def new_ticket(now: datetime) -> Ticket:
    return Ticket(
        number=1,
        intake_key="k",
        customer_id=1,
        account_number="1234",
        topic="t",
        kind=Kind.INCIDENT,
        description="d" * 10,
        priority=Priority.P2,
        status=Status.NEW,
        line=1,
        locale="en",
        created_at=now,
        updated_at=now,
        reopened_count=0,
        paused_seconds=0,
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.integers(0, 10_000)), max_size=30))
def test_history_follows_the_ticket(steps: list[tuple[Action, int]]) -> None:
    now = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)
    ticket, history = new_ticket(now), History()
    status = Status.NEW
    for action, seconds in steps:
        now += timedelta(seconds=seconds)
        legal = (status, action) in TRANSITIONS
        before = len(history.events)
        try:
            apply(history, ticket, action, actor_id=1, role="staff", now=now, hours=HOURS)  # type: ignore[arg-type]
        except TransitionRefused:
            assert not legal
            assert len(history.events) == before and ticket.status is status  # nothing changed
            continue
        assert legal
        status = TRANSITIONS[(status, action)]
        assert ticket.status is status
    changes = [e for e in history.events if e.type == "status"]
    # The history is a chain from "new" to the ticket's status.
    chain = [Status.NEW.value] + [e.new for e in changes]
    assert all(e.old == chain[i] for i, e in enumerate(changes))
    assert chain[-1] == ticket.status.value
    assert (ticket.status is Status.CLOSED) == (ticket.close_reason is not None)
    assert (ticket.closed_at is not None) == (ticket.status is Status.CLOSED)
    closes = [e for e in history.events if e.type == "close_reason"]
    assert len(closes) == (1 if ticket.status is Status.CLOSED else 0)
    assert ticket.reopened_count == sum(1 for e in changes if e.details["action"] == "dispute")
    assert ticket.paused_seconds >= 0
    assert (ticket.waiting_since is not None) == (ticket.status is Status.WAITING_CUSTOMER)
