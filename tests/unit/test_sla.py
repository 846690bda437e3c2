"""First-response SLA in support hours, with pauses (SPEC §3)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain.hours import SupportHours
from bot.domain.sla import SlaState, elapsed, first_response

MSK = ZoneInfo("Europe/Moscow")
HOURS = SupportHours.parse("09:00-21:00", MSK)
TARGET = timedelta(minutes=30)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK)


def sla(created: datetime, now: datetime, **kwargs):  # type: ignore[no-untyped-def]
    return first_response(
        HOURS,
        TARGET,
        created_at=created,
        now=now,
        first_response_at=kwargs.get("answered"),
        paused_seconds=kwargs.get("paused", 0),
        waiting_since=kwargs.get("waiting"),
    )


def test_a_ticket_opened_at_20_59_is_due_the_next_morning() -> None:
    created = at(10, 20, 59)
    assert sla(created, at(10, 21, 30)).elapsed == timedelta(minutes=1)
    assert sla(created, at(11, 9, 23)).state is SlaState.NEAR  # 1 + 23 = 24 min >= 80%
    assert sla(created, at(11, 9, 28)).state is SlaState.NEAR
    assert sla(created, at(11, 9, 29)).state is SlaState.BREACHED
    assert sla(created, at(11, 9, 28)).left == timedelta(minutes=1)


def test_a_ticket_opened_at_night_starts_counting_at_nine() -> None:
    created = at(10, 3, 0)
    assert sla(created, at(10, 8, 59)).elapsed == timedelta(0)
    assert sla(created, at(10, 9, 10)).state is SlaState.RUNNING
    assert sla(created, at(10, 9, 30)).state is SlaState.BREACHED


def test_waiting_for_the_customer_pauses_the_clock() -> None:
    created = at(10, 10, 0)
    # 10 minutes of work, then waiting since 10:10: the clock stands still.
    paused = sla(created, at(10, 12, 0), waiting=at(10, 10, 10))
    assert paused.state is SlaState.PAUSED and paused.elapsed == timedelta(minutes=10)
    # Back in progress at 12:00 after 110 paused minutes: 10 + 15 = 25 minutes at 12:15.
    resumed = sla(created, at(10, 12, 15), paused=110 * 60)
    assert resumed.elapsed == timedelta(minutes=25) and resumed.state is SlaState.NEAR


def test_an_answer_stops_the_clock() -> None:
    created = at(10, 10, 0)
    met = sla(created, at(12, 10, 0), answered=at(10, 10, 20))
    assert met.state is SlaState.MET and met.elapsed == timedelta(minutes=20)
    late = sla(created, at(12, 10, 0), answered=at(10, 11, 0))
    assert late.state is SlaState.BREACHED


def test_elapsed_never_negative() -> None:
    assert elapsed(
        HOURS, created_at=at(10, 10), until=at(10, 10), paused_seconds=999, waiting_since=None
    ) == timedelta(0)
