"""First-response SLA (SPEC §3): counted in support hours only, paused while the ticket waits
for the customer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.hours import SupportHours

NEAR_SHARE = 0.8  # staff are warned when 80% of the target is used


class SlaState(StrEnum):
    RUNNING = "running"
    NEAR = "near"
    BREACHED = "breached"
    PAUSED = "paused"
    MET = "met"


@dataclass(frozen=True, slots=True)
class Sla:
    state: SlaState
    elapsed: timedelta  # support-hours time counted against the target
    target: timedelta
    answered: bool = False
    # When the target runs out, in support hours: None once answered or while paused (the
    # clock stands still: the deadline moves as long as the customer keeps us waiting).
    due: datetime | None = None

    @property
    def left(self) -> timedelta:
        return self.target - self.elapsed


def elapsed(
    hours: SupportHours,
    *,
    created_at: datetime,
    until: datetime,
    paused_seconds: int,
    waiting_since: datetime | None,
) -> timedelta:
    """Support-hours time from ``created_at`` to ``until``, less the time spent waiting."""
    total = hours.working_time_between(created_at, until) - timedelta(seconds=paused_seconds)
    if waiting_since is not None:
        total -= hours.working_time_between(waiting_since, until)
    return max(total, timedelta(0))


def first_response(
    hours: SupportHours,
    target: timedelta,
    *,
    created_at: datetime,
    now: datetime,
    first_response_at: datetime | None,
    paused_seconds: int,
    waiting_since: datetime | None,
) -> Sla:
    until = first_response_at or now
    spent = elapsed(
        hours,
        created_at=created_at,
        until=until,
        paused_seconds=paused_seconds,
        waiting_since=None if first_response_at else waiting_since,
    )
    if first_response_at is not None:
        state = SlaState.MET if spent <= target else SlaState.BREACHED
    elif spent >= target:
        state = SlaState.BREACHED
    elif waiting_since is not None:
        state = SlaState.PAUSED
    elif spent >= target * NEAR_SHARE:
        state = SlaState.NEAR
    else:
        state = SlaState.RUNNING
    due = None
    if first_response_at is None and waiting_since is None:
        due = hours.advance(created_at, target + timedelta(seconds=paused_seconds))
    return Sla(state, spent, target, answered=first_response_at is not None, due=due)
