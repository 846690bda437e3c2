"""Telegram's sending limits (SPEC §8): ~30/s per bot, 1/s per chat, 20/min per group.

Time is passed explicitly. The limiter's own default clock is ``time.monotonic``, so most
tests start their explicit clock well after "now" on that clock (``T0``)."""

from __future__ import annotations

import heapq
import json
import math
import time
from dataclasses import dataclass
from itertools import pairwise

import pytest
from cachetools import TLRUCache
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.delivery.limiter import Limits, RateLimiter

USER = 1001
OTHER_USER = 1002
GROUP = -1001234567890

T0 = time.monotonic() + 10_000.0  # explicit clock, ahead of the limiter's creation time


def grants(
    limiter: RateLimiter, chat_id: int, start: float, end: float, step: float
) -> list[float]:
    """Ask for a slot every ``step`` seconds from ``start`` to ``end``; the times granted."""
    granted: list[float] = []
    n = 0
    while (now := start + n * step) < end:
        if limiter.reserve(chat_id, now=now) == 0:
            granted.append(now)
        n += 1
    return granted


def max_in_window(times: list[float], window: float) -> int:
    """The most grants inside any half-open window ``[t, t + window)`` (give or take the
    limiter's microsecond)."""
    best = 0
    for i, t in enumerate(times):
        best = max(best, sum(1 for u in times[i:] if u < t + window - 1e-6))
    return best


# ---------------------------------------------------------------- private chats


def test_private_chat_burst_then_one_per_second() -> None:
    limiter = RateLimiter(Limits(margin=0, private_per_second=1.0, private_burst=3))
    assert [limiter.reserve(USER, now=T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.reserve(USER, now=T0)
    assert wait == pytest.approx(1.0)
    # Asking again without time passing takes nothing and gives the same answer.
    assert limiter.reserve(USER, now=T0) == pytest.approx(1.0)
    assert limiter.reserve(USER, now=T0 + 0.4) == pytest.approx(0.6)
    assert limiter.reserve(USER, now=T0 + 1.0) == 0.0
    assert limiter.reserve(USER, now=T0 + 1.5) == pytest.approx(0.5)
    assert limiter.reserve(USER, now=T0 + 2.0) == 0.0


def test_private_chat_sustained_rate_is_one_per_second() -> None:
    limiter = RateLimiter(Limits(margin=0, private_per_second=1.0, private_burst=3))
    granted = grants(limiter, USER, T0, T0 + 60, 0.05)
    # 3 at once, then one a second: 3 + 59 over a minute (the last at T0 + 59).
    assert len(granted) == 62
    later = granted[3:]
    gaps = [b - a for a, b in pairwise(later)]
    assert all(gap == pytest.approx(1.0, abs=0.06) for gap in gaps)


def test_a_refused_reservation_takes_nothing() -> None:
    limiter = RateLimiter(Limits(margin=0, private_per_second=1.0, private_burst=1))
    assert limiter.reserve(USER, now=T0) == 0
    for k in range(10):
        assert limiter.reserve(USER, now=T0 + k * 0.05) > 0
    assert limiter.reserve(USER, now=T0 + 1.0) == 0


def test_private_chats_are_limited_separately() -> None:
    limiter = RateLimiter(Limits(margin=0, private_per_second=1.0, private_burst=1))
    assert limiter.reserve(USER, now=T0) == 0
    assert limiter.reserve(USER, now=T0) > 0
    assert limiter.reserve(OTHER_USER, now=T0) == 0


def test_the_burst_is_refilled_after_a_quiet_time() -> None:
    limiter = RateLimiter(Limits(margin=0, private_per_second=1.0, private_burst=3))
    # Asked every 0.1 s for half a second: the burst of 3 goes at once, then nothing.
    assert grants(limiter, USER, T0, T0 + 0.5, 0.1) == [T0, T0 + 0.1, T0 + 0.2]
    assert limiter.reserve(USER, now=T0 + 100) == 0
    assert limiter.reserve(USER, now=T0 + 100) == 0
    assert limiter.reserve(USER, now=T0 + 100) == 0
    assert limiter.reserve(USER, now=T0 + 100) > 0  # no more than the burst, however long


# ---------------------------------------------------------------- groups


def test_group_calls_are_at_least_a_second_apart() -> None:
    """About one message a second in any one chat, a group too."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    assert limiter.reserve(GROUP, now=T0) == 0
    assert limiter.reserve(GROUP, now=T0) == pytest.approx(1.0)
    assert limiter.reserve(GROUP, now=T0 + 0.6) == pytest.approx(0.4)
    assert limiter.reserve(GROUP, now=T0 + 1.0) == 0
    granted = grants(limiter, GROUP, T0 + 1.05, T0 + 300, 0.05)
    assert min(b - a for a, b in pairwise([T0 + 1.0, *granted])) >= 1.0 - 1e-6


def test_group_burst_after_idle_then_evenly_every_three_seconds() -> None:
    """A burst of at most 3 calls a second apart, then one every 60/20 = 3 s: not 20 in 20 s
    followed by 40 s of silence."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    granted = [round(t - T0, 6) for t in grants(limiter, GROUP, T0, T0 + 75, 0.25)]
    assert granted[:3] == [0.0, 1.0, 2.0]
    # The burst is paid back before the even pace starts: 3 steps of 3 s after the first.
    assert granted[3:] == [9.0 + 3 * k for k in range(len(granted) - 3)]
    assert granted[-1] == 72.0


def test_group_ten_minutes_of_constant_demand() -> None:
    """SPEC §8: 20 messages a minute per group. Telegram (and the emulator) count them in a
    sliding minute, so no 60-second window may hold more than 20 — and they are spread."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    granted = grants(limiter, GROUP, T0, T0 + 600, 0.25)
    assert max_in_window(granted, 60.0) <= 20, (
        f"{max_in_window(granted, 60.0)} messages in one minute; first ones at "
        f"{[round(t - T0, 2) for t in granted[:25]]}"
    )
    assert max_in_window(granted, 20.0) <= 7  # the burst of 3, then one every 3 s
    assert min(b - a for a, b in pairwise(granted)) >= 1.0 - 1e-6
    # The whole budget is used all the same: 20 a minute.
    assert len(granted) == 200
    assert max(b - a for a, b in pairwise(granted[3:])) == pytest.approx(3.0)


def test_the_burst_comes_back_only_as_the_group_stays_idle() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    for t in (0, 1, 2, 9, 12):  # the burst, then on schedule; next due at 15
        assert limiter.reserve(GROUP, now=T0 + t) == 0
    # Idle one step past the schedule (15 -> 18): one extra call may go ahead of it.
    assert limiter.reserve(GROUP, now=T0 + 18) == 0
    assert limiter.reserve(GROUP, now=T0 + 19) == 0
    assert limiter.reserve(GROUP, now=T0 + 20) == pytest.approx(4.0)  # due at 24 now
    assert limiter.reserve(GROUP, now=T0 + 24) == 0
    # Idle long enough (due at 27, two steps more): the full burst of 3 again.
    assert [limiter.reserve(GROUP, now=T0 + t) for t in (40, 41, 42)] == [0.0, 0.0, 0.0]
    assert limiter.reserve(GROUP, now=T0 + 43) == pytest.approx(6.0)  # 40 + 3 × 3


def test_group_of_60_per_minute_never_exceeds_60_in_a_minute() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=60))
    granted = grants(limiter, GROUP, T0, T0 + 200, 0.05)
    assert max_in_window(granted, 60.0) <= 60
    assert min(b - a for a, b in pairwise(granted)) >= 1.0 - 1e-6
    assert len(granted) >= 195


def test_a_group_budget_above_sixty_a_minute_is_not_held_to_one_a_second() -> None:
    """Only a self-hosted Bot API server or a test allows more; the spacing follows it."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=600, global_per_second=1000))
    granted = grants(limiter, GROUP, T0, T0 + 10, 0.01)
    assert max_in_window(granted, 60.0) <= 600
    assert len(granted) == pytest.approx(100, abs=3)  # one every 0.1 s


def test_a_refused_group_reservation_takes_nothing() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    for t in (0, 1, 2):
        assert limiter.reserve(GROUP, now=T0 + t) == 0
    for k in range(60):  # asked again and again while waiting: the schedule does not move
        assert limiter.reserve(GROUP, now=T0 + 2 + k * 0.1) > 0
    assert limiter.reserve(GROUP, now=T0 + 9) == 0


def test_group_chats_are_limited_separately_from_private_ones() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=1, private_burst=1))
    assert limiter.reserve(GROUP, now=T0) == 0
    assert limiter.reserve(GROUP, now=T0 + 1) > 0
    assert limiter.reserve(-1009, now=T0) == 0  # another group
    assert limiter.reserve(USER, now=T0) == 0
    assert limiter.reserve(GROUP, now=T0) == pytest.approx(60.0)


def test_a_group_is_forgotten_only_once_its_burst_is_back() -> None:
    """The window empties at 62, but the burst spent at 0-2 comes back only with idle steps
    past the schedule (due at 60): forgetting the group at 62 would give it a new burst."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20, global_per_second=1000))
    assert limiter.reserve(GROUP, now=T0, messages=18) == 0
    assert limiter.reserve(GROUP, now=T0 + 1) == 0
    assert limiter.reserve(GROUP, now=T0 + 2) == 0
    assert limiter.tracked_chats() == 1
    assert limiter.reserve(GROUP, now=T0 + 63) == 0  # one step idle: one call of burst back
    assert limiter.reserve(GROUP, now=T0 + 64) == 0
    assert limiter.reserve(GROUP, now=T0 + 65) == pytest.approx(4.0)
    assert limiter.reserve(GROUP, now=T0 + 500) == 0
    assert limiter.reserve(USER, now=T0 + 600) == 0
    assert limiter.tracked_chats() == 1  # the group is fresh again and forgotten


# ---------------------------------------------------------------- calls posting several messages


def test_an_album_to_a_group_counts_its_messages_but_is_one_call() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    assert limiter.reserve(GROUP, now=T0, messages=10) == 0
    # One call for the spacing: another album a second later (the burst)...
    assert limiter.reserve(GROUP, now=T0 + 0.5) == pytest.approx(0.5)
    assert limiter.reserve(GROUP, now=T0 + 1, messages=10) == 0
    # ...but 20 messages are the minute's budget: nothing more until the first album leaves.
    assert limiter.reserve(GROUP, now=T0 + 2) == pytest.approx(58.0)
    assert limiter.reserve(GROUP, now=T0 + 60) == 0


def test_an_album_is_paced_as_its_messages() -> None:
    """10 messages take 10 steps of the group's pace: what follows is spread, not crammed."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20, group_burst=1))
    assert limiter.reserve(GROUP, now=T0, messages=10) == 0
    assert limiter.reserve(GROUP, now=T0 + 1) == pytest.approx(29.0)
    assert limiter.reserve(GROUP, now=T0 + 30) == 0


def test_an_album_waits_for_room_in_the_window() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    for t in (0, 1, 2, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45):
        assert limiter.reserve(GROUP, now=T0 + t) == 0
    # 16 in the window: an album of 6 needs the first two to leave (at 60 and 61)...
    assert limiter.reserve(GROUP, now=T0 + 48, messages=6) == pytest.approx(13.0)
    assert limiter.reserve(GROUP, now=T0 + 48, messages=5) == pytest.approx(12.0)
    assert limiter.reserve(GROUP, now=T0 + 48, messages=4) == 0  # ...one of 4 fits


def test_more_messages_than_the_window_holds_go_into_an_empty_one() -> None:
    """copyMessages of 100 ids to a group: refused for good it would be lost; it goes when the
    window is empty and fills it."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    assert limiter.reserve(GROUP, now=T0) == 0
    assert limiter.reserve(GROUP, now=T0 + 9, messages=100) == pytest.approx(51.0)
    assert limiter.reserve(GROUP, now=T0 + 60, messages=100) == 0
    assert limiter.reserve(GROUP, now=T0 + 61) == pytest.approx(59.0)
    assert limiter.reserve(GROUP, now=T0 + 120) == 0


def test_an_album_to_a_private_chat_is_one_call_there_but_counts_for_the_bot() -> None:
    limiter = RateLimiter(Limits(margin=0, global_per_second=30, private_burst=3))
    assert limiter.reserve(USER, now=T0, messages=10) == 0
    assert limiter.reserve(USER, now=T0, messages=10) == 0
    # The chat's burst has one call left, but the bot's second is down to 10 messages.
    assert limiter.reserve(USER, now=T0, messages=10) == 0
    assert limiter.reserve(OTHER_USER, now=T0) == pytest.approx(1.0)
    assert limiter.reserve(OTHER_USER, now=T0 + 1, messages=50) == 0  # fills the bot's second
    assert limiter.reserve(3003, now=T0 + 1.5) == pytest.approx(0.5)


def test_room_and_charge_for_a_call_that_takes_in_more() -> None:
    """A relay chosen as one message takes in the ones queued behind it (copyMessages): it may
    grow by what the group's minute has left, and the rest is counted when it grows."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20, global_per_second=30))
    assert limiter.room(GROUP, now=T0) == 20
    assert limiter.reserve(GROUP, now=T0) == 0
    assert limiter.room(GROUP, now=T0) == 19
    limiter.charge(GROUP, 14, now=T0)  # it went as copyMessages of 15
    assert limiter.room(GROUP, now=T0 + 1) == 5
    assert limiter.reserve(GROUP, now=T0 + 1, messages=6) == pytest.approx(59.0)
    assert limiter.reserve(GROUP, now=T0 + 1, messages=5) == 0  # the burst's second call
    assert limiter.room(GROUP, now=T0 + 2) == 0
    assert limiter.room(GROUP, now=T0 + 60) == 15
    assert limiter.room(GROUP, now=T0 + 61) == 20
    # A private chat counts calls: only the bot's second bounds what a call may take in.
    assert limiter.room(USER, now=T0 + 61) == 30
    limiter.pause(GROUP, 10, now=T0 + 61)
    assert limiter.room(GROUP, now=T0 + 62) == 0


def test_what_a_call_took_in_counts_for_the_pace() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20, group_burst=1))
    assert limiter.reserve(GROUP, now=T0) == 0
    limiter.charge(GROUP, 14, now=T0)  # 15 messages are 45 s of the group's schedule
    assert limiter.room(GROUP, now=T0 + 1) == 5
    assert limiter.reserve(GROUP, now=T0 + 1) == pytest.approx(44.0)


def test_a_call_posts_at_least_one_message() -> None:
    limiter = RateLimiter(Limits(margin=0))
    with pytest.raises(ValueError, match="at least one"):
        limiter.reserve(GROUP, now=T0, messages=0)


# ---------------------------------------------------------------- the whole bot


def test_global_limit_across_chats_sustained() -> None:
    limiter = RateLimiter(
        Limits(margin=0, global_per_second=30, private_per_second=1, private_burst=1)
    )
    granted: list[float] = []
    # 1000 different chats, asked round robin every 5 ms for 10 s.
    for n in range(2000):
        now = T0 + n * 0.005
        if limiter.reserve(10_000 + n % 1000, now=now) == 0:
            granted.append(now)
    assert 300 <= len(granted) <= 330
    tail = [t for t in granted if t >= T0 + 2]
    assert len(tail) == pytest.approx(30 * 8, abs=3)


def test_global_limit_never_more_than_30_in_any_second() -> None:
    """About 30 messages a second for the whole bot, counted over any one-second window."""
    limiter = RateLimiter(
        Limits(margin=0, global_per_second=30, private_per_second=1, private_burst=1)
    )
    granted: list[float] = []
    for n in range(1000):
        now = T0 + n * 0.005
        if limiter.reserve(10_000 + n, now=now) == 0:
            granted.append(now)
    assert max_in_window(granted, 1.0) <= 30, max_in_window(granted, 1.0)


def test_the_global_wait_is_reported_when_the_chat_is_free() -> None:
    limiter = RateLimiter(
        Limits(margin=0, global_per_second=2, private_burst=5, private_per_second=5)
    )
    assert limiter.reserve(USER, now=T0) == 0
    assert limiter.reserve(OTHER_USER, now=T0) == 0
    wait = limiter.reserve(3003, now=T0)  # a fresh chat, but the bot used its second
    assert wait == pytest.approx(1.0)
    assert limiter.reserve(3003, now=T0 + 1.0) == 0


def test_a_refusal_by_the_chat_takes_no_global_token() -> None:
    limiter = RateLimiter(
        Limits(margin=0, global_per_second=2, private_burst=1, private_per_second=1)
    )
    assert limiter.reserve(USER, now=T0) == 0
    for _ in range(5):
        assert limiter.reserve(USER, now=T0) > 0
    assert limiter.reserve(OTHER_USER, now=T0) == 0  # the bot still had a token left


# ---------------------------------------------------------------- 429


def test_pause_after_429_blocks_the_chat_for_retry_after() -> None:
    limiter = RateLimiter(Limits(margin=0, private_per_second=1.0, private_burst=3))
    assert limiter.reserve(USER, now=T0) == 0
    limiter.pause(USER, 5, now=T0)
    assert limiter.reserve(USER, now=T0) == pytest.approx(5.0)
    assert limiter.reserve(USER, now=T0 + 4.9) == pytest.approx(0.1)
    assert limiter.reserve(USER, now=T0 + 5.0) == 0
    # Only one message right after the pause: the burst is not given back at once.
    assert limiter.reserve(USER, now=T0 + 5.0) > 0


def test_pause_concerns_only_that_chat() -> None:
    limiter = RateLimiter(Limits(margin=0))
    limiter.pause(USER, 30, now=T0)
    assert limiter.reserve(USER, now=T0 + 1) == pytest.approx(29.0)
    assert limiter.reserve(OTHER_USER, now=T0 + 1) == 0
    assert limiter.reserve(GROUP, now=T0 + 1) == 0


def test_pause_of_a_group() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    limiter.pause(GROUP, 12, now=T0)
    assert limiter.reserve(GROUP, now=T0) == pytest.approx(12.0)
    assert limiter.reserve(GROUP, now=T0 + 12) == 0


def test_pause_of_a_group_stops_its_burst_window_and_pace() -> None:
    """A 429 that still comes pauses the group — its burst, its minute and its pace — for
    ``retry_after``; after it, one call and then the even pace, not a burst."""
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    assert limiter.reserve(GROUP, now=T0) == 0
    limiter.pause(GROUP, 5, now=T0 + 0.5)
    # The burst had two calls left and the window 19 messages: neither helps during the pause.
    assert limiter.reserve(GROUP, now=T0 + 1) == pytest.approx(4.5)
    assert limiter.reserve(GROUP, now=T0 + 4, messages=3) == pytest.approx(1.5)
    assert limiter.reserve(GROUP, now=T0 + 5.5) == 0
    assert limiter.reserve(GROUP, now=T0 + 6.5) == pytest.approx(2.0)  # the pace, no burst
    assert limiter.reserve(GROUP, now=T0 + 8.5) == 0
    assert grants(limiter, GROUP, T0 + 8.75, T0 + 20, 0.25) == [
        pytest.approx(T0 + t) for t in (11.5, 14.5, 17.5)
    ]


def test_pause_of_a_group_is_not_shortened_by_its_idle_schedule() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    assert limiter.reserve(GROUP, now=T0) == 0
    limiter.pause(GROUP, 30, now=T0 + 1)
    assert limiter.reserve(GROUP, now=T0 + 30.9) == pytest.approx(0.1)
    # A long pause is not idleness that earns a burst: after it, one call, then the pace.
    assert limiter.reserve(GROUP, now=T0 + 31) == 0
    assert limiter.reserve(GROUP, now=T0 + 32) == pytest.approx(2.0)


def test_resume_ends_a_group_pause_early() -> None:
    limiter = RateLimiter(Limits(margin=0, group_per_minute=20))
    assert limiter.reserve(GROUP, now=T0) == 0
    limiter.pause(GROUP, 600, now=T0)
    assert limiter.reserve(GROUP, now=T0 + 10) == pytest.approx(590.0)
    limiter.resume(GROUP, now=T0 + 10)
    assert limiter.reserve(GROUP, now=T0 + 10) == 0
    assert limiter.reserve(GROUP, now=T0 + 10.5) > 0  # its own rate still holds


def test_a_shorter_pause_does_not_shorten_a_longer_one() -> None:
    limiter = RateLimiter(Limits(margin=0))
    limiter.pause(USER, 10, now=T0)
    limiter.pause(USER, 2, now=T0 + 1)
    assert limiter.reserve(USER, now=T0 + 3) == pytest.approx(7.0)


# ---------------------------------------------------------------- explicit clocks


def test_an_explicit_clock_starting_at_zero() -> None:
    """``now`` is a parameter: a caller with its own clock (a test, a simulated one) must get
    the same answers as with the default clock. A fresh chat may send at once."""
    limiter = RateLimiter(Limits(margin=0, private_per_second=1.0, private_burst=3))
    assert limiter.reserve(USER, now=0.0) == 0
    assert limiter.reserve(USER, now=0.0) == 0
    assert limiter.reserve(USER, now=0.0) == 0
    assert limiter.reserve(USER, now=0.0) == pytest.approx(1.0)
    assert limiter.reserve(USER, now=1.0) == 0


def test_default_clock_a_fresh_chat_may_send_at_once() -> None:
    limiter = RateLimiter(Limits(margin=0))
    assert limiter.reserve(USER) == 0
    assert limiter.reserve(GROUP) == 0


# ---------------------------------------------------------------- any demand at all


@dataclass(frozen=True)
class Ask:
    after: float  # seconds since the previous ask
    chat_id: int
    messages: int
    kind: str  # "send", "edit", "pause" or "grow" (a call taking in more: room and charge)
    retry: bool  # when refused, ask again exactly when told to


PROPERTY_LIMITS = Limits(margin=0, global_per_second=12, group_per_minute=20)
PROPERTY_GROUPS = (GROUP, -1009)
PROPERTY_PRIVATE = (USER, OTHER_USER)

asks = st.builds(
    Ask,
    after=st.one_of(st.just(0.0), st.floats(0, 4), st.floats(0, 90)),
    chat_id=st.sampled_from(PROPERTY_GROUPS + PROPERTY_PRIVATE),
    messages=st.one_of(st.just(1), st.integers(1, 30)),
    kind=st.sampled_from(["send", "send", "send", "send", "edit", "pause", "grow"]),
    retry=st.booleans(),
)


def never_forgetting(limits: Limits) -> RateLimiter:
    """The same limiter keeping every chat for good: forgetting a fresh limit must not change
    a single decision."""
    limiter = RateLimiter(limits)
    limiter._chats = TLRUCache(10**6, ttu=lambda key, value, now: math.inf)
    return limiter


@settings(max_examples=300, deadline=None)
@given(st.lists(asks, max_size=250))
def test_no_limit_is_ever_exceeded_whatever_the_demand(demand: list[Ask]) -> None:
    limiter, reference = RateLimiter(PROPERTY_LIMITS), never_forgetting(PROPERTY_LIMITS)
    granted: dict[int, list[tuple[float, int]]] = {}  # chat -> (time, messages), edits apart
    overall: list[tuple[float, int]] = []
    pauses: list[tuple[int, int, float]] = []  # chat, grants before the pause, its end
    now = T0
    for ask in demand:
        now += ask.after
        if ask.kind == "pause":
            seconds = float(ask.messages % 7 + 1)
            limiter.pause(ask.chat_id, seconds, now=now)
            reference.pause(ask.chat_id, seconds, now=now)
            pauses.append((ask.chat_id, len(granted.get(ask.chat_id, [])), now + seconds))
            continue
        edit = ask.kind == "edit"
        messages = 1 if ask.kind in ("edit", "grow") else ask.messages
        wait = limiter.reserve(ask.chat_id, now=now, edit=edit, messages=messages)
        assert wait == reference.reserve(ask.chat_id, now=now, edit=edit, messages=messages)
        if wait > 0 and ask.retry:
            now += wait  # waiting what it says is enough when nothing else went meanwhile
            wait = limiter.reserve(ask.chat_id, now=now, edit=edit, messages=messages)
            assert wait == 0
            assert reference.reserve(ask.chat_id, now=now, edit=edit, messages=messages) == 0
        if wait == 0 and ask.kind == "grow":
            more = min(ask.messages - 1, limiter.room(ask.chat_id, now=now))
            assert more == min(ask.messages - 1, reference.room(ask.chat_id, now=now))
            limiter.charge(ask.chat_id, more, now=now)
            reference.charge(ask.chat_id, more, now=now)
            messages += more
        if wait == 0:
            overall.append((now, messages))
            if not edit:
                granted.setdefault(ask.chat_id, []).append((now, messages))

    assert_within_limits(overall, granted, pauses)


def most_in_window(sent: list[tuple[float, int]], seconds: float, cap: int) -> int:
    return max(
        (
            sum(min(n, cap) for u, n in sent[i:] if u < t + seconds - 1e-6)
            for i, (t, _) in enumerate(sent)
        ),
        default=0,
    )


def assert_within_limits(
    overall: list[tuple[float, int]],
    granted: dict[int, list[tuple[float, int]]],
    pauses: list[tuple[int, int, float]],
) -> None:
    """PROPERTY_LIMITS kept by what was granted: (time, messages) in all and per chat."""
    assert most_in_window(overall, 1.0, 12) <= 12
    for group in PROPERTY_GROUPS:
        sent = granted.get(group, [])
        assert most_in_window(sent, 60.0, 20) <= 20
        assert all(b - a >= 1.0 - 1e-6 for (a, _), (b, _) in pairwise(sent))
    for private in PROPERTY_PRIVATE:
        sent = granted.get(private, [])
        # A bucket of 3 refilled at 1/s: never more than 3 + the seconds between calls.
        for i, (t, _) in enumerate(sent):
            for j in range(i, len(sent)):
                assert j - i + 1 <= 3 + (sent[j][0] - t) + 1e-6
    for chat_id, before, end in pauses:
        assert all(t >= end - 1e-6 for t, _ in granted.get(chat_id, [])[before:])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(asks, max_size=200),
    st.sets(st.integers(0, 199), max_size=4),
    st.floats(1.0, 10.0),
)
def test_a_chat_handed_over_to_a_new_limiter_keeps_every_limit(
    demand: list[Ask], handovers: set[int], gap: float
) -> None:
    """A sender stops and another one (or itself restarted, ``gap`` seconds later) goes on
    from what its limits remembered (``memory`` through JSON, then ``recall``): together they
    keep every limit, as one limiter would."""
    limiter = RateLimiter(PROPERTY_LIMITS)
    granted: dict[int, list[tuple[float, int]]] = {}
    overall: list[tuple[float, int]] = []
    pauses: list[tuple[int, int, float]] = []
    now = T0
    for n, ask in enumerate(demand):
        now += ask.after
        if n in handovers:
            chats = PROPERTY_GROUPS + PROPERTY_PRIVATE
            memories = {chat: limiter.memory(chat, now=now) for chat in chats}
            left = json.loads(json.dumps({str(c): m for c, m in memories.items() if m}))
            now += gap  # the bot's own second has passed: only the chats' limits are handed
            limiter = RateLimiter(PROPERTY_LIMITS)
            for chat, memory in left.items():
                limiter.recall(int(chat), memory, gap, now=now)
        if ask.kind == "pause":
            seconds = float(ask.messages % 7 + 1)
            limiter.pause(ask.chat_id, seconds, now=now)
            pauses.append((ask.chat_id, len(granted.get(ask.chat_id, [])), now + seconds))
            continue
        edit = ask.kind == "edit"
        messages = 1 if ask.kind in ("edit", "grow") else ask.messages
        wait = limiter.reserve(ask.chat_id, now=now, edit=edit, messages=messages)
        if wait > 0 and ask.retry:
            now += wait
            wait = limiter.reserve(ask.chat_id, now=now, edit=edit, messages=messages)
            assert wait == 0
        if wait == 0 and ask.kind == "grow":
            more = min(ask.messages - 1, limiter.room(ask.chat_id, now=now))
            limiter.charge(ask.chat_id, more, now=now)
            messages += more
        if wait == 0:
            overall.append((now, messages))
            if not edit:
                granted.setdefault(ask.chat_id, []).append((now, messages))
    assert_within_limits(overall, granted, pauses)


def test_a_handed_over_chat_goes_on_at_once_when_its_limits_allow() -> None:
    """What the former holder sent still counts, and no more than that: a group that had two
    messages this minute takes the next one on its pace, not a minute later."""
    old = RateLimiter(Limits(margin=0))
    assert old.reserve(GROUP, now=T0) == 0
    assert old.reserve(GROUP, now=T0 + 3) == 0
    memory = json.loads(json.dumps(old.memory(GROUP, now=T0 + 4)))
    assert old.fresh_in(GROUP, now=T0 + 4) > 50  # what holding the chat until fresh cost
    new = RateLimiter(Limits(margin=0))
    new.recall(GROUP, memory, 1.0, now=T0 + 5)
    assert new.reserve(GROUP, now=T0 + 6) == 0
    full = RateLimiter(Limits(margin=0))
    for n in range(20):
        full.reserve(GROUP, now=T0 + 3 * n)
    memory = json.loads(json.dumps(full.memory(GROUP, now=T0 + 58)))
    new = RateLimiter(Limits(margin=0))
    new.recall(GROUP, memory, 0.0, now=T0 + 58)
    assert new.reserve(GROUP, now=T0 + 59) > 0  # the minute is full: wait for its first
    assert new.reserve(GROUP, now=T0 + 60) == 0
    assert old.memory(USER, now=T0) is None  # never sent there: nothing to hand over


def test_the_margin_keeps_calls_clear_of_telegrams_own_counting() -> None:
    """Telegram counts a request when it arrives: with the default margin a group's calls are
    1.2 s apart and the bot's 30 a second are counted over 1.2 s, so a request that is a little
    late cannot land inside a window it was kept out of."""
    limiter = RateLimiter(Limits())
    group = -100
    assert limiter.reserve(group, now=10.0) == 0.0
    assert limiter.reserve(group, now=11.1) > 0
    assert limiter.reserve(group, now=11.2) == 0.0
    for chat in range(1, 31):
        assert limiter.reserve(chat, now=20.0) == 0.0
    assert limiter.reserve(99, now=21.1) > 0
    assert limiter.reserve(99, now=21.2) == 0.0
    # Lifted limits (a benchmark) stay lifted: the margin is at most a fifth of a spacing.
    lifted = RateLimiter(Limits(group_per_minute=10**6, global_per_second=10**6))
    assert all(lifted.reserve(group, now=30.0 + k * 1e-4) == 0.0 for k in range(100))


def test_a_call_counts_from_when_it_was_answered() -> None:
    """A busy process may send a call well after taking its slot; Telegram counts it when it
    arrives, somewhere before the answer. Landed, it counts from the answer."""
    limiter = RateLimiter(Limits())
    group = -100
    assert limiter.reserve(group, now=10.0, flying=True) == 0.0
    limiter.land(group, 10.0, now=10.5)
    assert limiter.reserve(group, now=11.2) > 0  # 1.2 s after the slot, not after the answer
    assert limiter.reserve(group, now=11.7) == 0.0
    for chat in range(1, 31):
        assert limiter.reserve(chat, now=20.0, flying=True) == 0.0
        limiter.land(chat, 20.0, now=20.4)
    assert limiter.reserve(99, now=21.2) > 0
    assert limiter.reserve(99, now=21.6) == 0.0


def test_a_call_not_answered_yet_holds_its_place() -> None:
    """However long Telegram takes to answer, the call may still arrive at any moment: the
    next one waits for its answer (and then its spacing)."""
    limiter = RateLimiter(Limits())
    group = -100
    assert limiter.reserve(group, now=10.0, flying=True) == 0.0
    assert limiter.reserve(group, now=13.0) > 0  # long past its spacing, but not answered
    limiter.land(group, 10.0, now=13.0)
    assert limiter.reserve(group, now=14.1) > 0
    assert limiter.reserve(group, now=14.2) == 0.0
    for chat in range(1, 31):
        assert limiter.reserve(chat, now=20.0, flying=True) == 0.0
    assert limiter.reserve(99, now=25.0) > 0  # the bot's second is full until they land
    assert limiter.tracked_chats() >= 30  # and none of them is forgotten meanwhile
    for chat in range(1, 31):
        limiter.land(chat, 20.0, now=25.0)
    assert limiter.reserve(99, now=26.2) == 0.0


def test_a_group_allowed_far_more_than_telegrams_pace_takes_calls_while_others_fly() -> None:
    """Held to one call per answer, a group allowed 1,000,000 a minute would be held to what
    its round trips allow; it takes as many on their way as its spacing starts within the
    margin, each spacing still kept. At Telegram's pace it stays one at a time."""
    lifted = RateLimiter(Limits(group_per_minute=10**6, global_per_second=10**6))
    group = -100
    spacing = 60 / 10**6 * 1.2
    taken = [30.0 + k * spacing * 1.01 for k in range(50)]
    assert all(lifted.reserve(group, now=at, flying=True) == 0.0 for at in taken)
    assert lifted.reserve(group, now=taken[-1] + spacing / 2, flying=True) > 0  # spacing kept
    paced = RateLimiter(Limits())
    assert paced.reserve(group, now=30.0, flying=True) == 0.0
    assert paced.reserve(group, now=40.0, flying=True) > 0  # waits for the answer


def test_calls_in_flight_together_delay_a_private_chat_once() -> None:
    limiter = RateLimiter(Limits())  # a burst of 3, then one every 1.2 s
    for _ in range(3):
        assert limiter.reserve(USER, now=T0, flying=True) == 0.0
    for _ in range(3):
        limiter.land(USER, T0, now=T0 + 0.5)
    # No refill while they were on their way: the next one 1.2 s after they were answered...
    assert limiter.reserve(USER, now=T0 + 1.2) == pytest.approx(0.5)
    # ... and not three times that.
    assert limiter.reserve(USER, now=T0 + 1.7) == 0.0


def test_landing_an_edit_or_a_forgotten_chat_is_harmless() -> None:
    limiter = RateLimiter(Limits())
    assert limiter.reserve(USER, now=T0, edit=True, flying=True) == 0.0
    limiter.land(USER, T0, now=T0 + 0.1, edit=True)
    assert limiter.tracked_chats() == 0
    limiter.land(OTHER_USER, T0 - 5, now=T0)  # nothing was taken there: nothing to move
    assert limiter.reserve(OTHER_USER, now=T0) == 0.0


@dataclass(frozen=True)
class Flight:
    after: float  # seconds since the previous call was wanted
    chat_id: int
    messages: int
    flight: float  # from the slot to Telegram's answer
    arrives: float  # where in between Telegram counts it (0: at once, 1: just before the answer)


flights = st.builds(
    Flight,
    after=st.one_of(st.just(0.0), st.floats(0, 2), st.floats(0, 30)),
    chat_id=st.sampled_from(PROPERTY_GROUPS + PROPERTY_PRIVATE + (3, 4, 5)),
    messages=st.one_of(st.just(1), st.integers(1, 12)),
    flight=st.one_of(st.floats(0, 0.05), st.floats(0, 1.5)),
    arrives=st.floats(0, 1),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(flights, max_size=150))
def test_late_calls_provoke_no_429_from_telegrams_own_counting(wanted: list[Flight]) -> None:
    """Calls that reach Telegram anywhere between their slot and their answer, counted as the
    emulator counts them (arrival time, sliding windows, its small tolerance), are never
    refused, however late each one is."""
    from bot.emulator.methods import ApiError, RateLimits, _Limiter

    clock = 0.0
    telegram = _Limiter(RateLimits(), clock=lambda: clock)
    limiter = RateLimiter(Limits())
    events: list[tuple[float, int, str, Flight, float]] = []  # (when, order, what, call, slot)
    t = 1000.0
    for n, call in enumerate(wanted):
        t += call.after
        heapq.heappush(events, (t, n, "want", call, 0.0))
    order = len(wanted)
    while events:
        when, _, what, call, slot = heapq.heappop(events)
        order += 1
        if what == "want":
            wait = limiter.reserve(call.chat_id, now=when, messages=call.messages, flying=True)
            if wait > 0:
                heapq.heappush(events, (when + wait, order, "want", call, 0.0))
                continue
            arrival = when + call.arrives * call.flight
            heapq.heappush(events, (arrival, order, "arrive", call, when))
            heapq.heappush(events, (when + call.flight, order + 1, "land", call, when))
            order += 1
        elif what == "arrive":
            clock = when
            try:
                telegram.check(call.chat_id, call.chat_id < 0, call.messages)
            except ApiError as exc:
                pytest.fail(f"429 at {when - 1000:.3f} for {call}: {exc}")
        else:
            limiter.land(call.chat_id, slot, now=when, messages=call.messages)
