"""Telegram's sending limits (SPEC §8): ~30/s per bot, 1/s per chat, 20/min per group.

Time is passed explicitly. The limiter's own default clock is ``time.monotonic``, so most
tests start their explicit clock well after "now" on that clock (``T0``)."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest

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
    """The most grants inside any half-open window ``[t, t + window)``."""
    best = 0
    for i, t in enumerate(times):
        best = max(best, sum(1 for u in times[i:] if u < t + window - 1e-9))
    return best


# ---------------------------------------------------------------- private chats


def test_private_chat_burst_then_one_per_second() -> None:
    limiter = RateLimiter(Limits(private_per_second=1.0, private_burst=3))
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
    limiter = RateLimiter(Limits(private_per_second=1.0, private_burst=3))
    granted = grants(limiter, USER, T0, T0 + 60, 0.05)
    # 3 at once, then one a second: 3 + 59 over a minute (the last at T0 + 59).
    assert len(granted) == 62
    later = granted[3:]
    gaps = [b - a for a, b in pairwise(later)]
    assert all(gap == pytest.approx(1.0, abs=0.06) for gap in gaps)


def test_a_refused_reservation_takes_nothing() -> None:
    limiter = RateLimiter(Limits(private_per_second=1.0, private_burst=1))
    assert limiter.reserve(USER, now=T0) == 0
    for k in range(10):
        assert limiter.reserve(USER, now=T0 + k * 0.05) > 0
    assert limiter.reserve(USER, now=T0 + 1.0) == 0


def test_private_chats_are_limited_separately() -> None:
    limiter = RateLimiter(Limits(private_per_second=1.0, private_burst=1))
    assert limiter.reserve(USER, now=T0) == 0
    assert limiter.reserve(USER, now=T0) > 0
    assert limiter.reserve(OTHER_USER, now=T0) == 0


def test_the_burst_is_refilled_after_a_quiet_time() -> None:
    limiter = RateLimiter(Limits(private_per_second=1.0, private_burst=3))
    # Asked every 0.1 s for half a second: the burst of 3 goes at once, then nothing.
    assert grants(limiter, USER, T0, T0 + 0.5, 0.1) == [T0, T0 + 0.1, T0 + 0.2]
    assert limiter.reserve(USER, now=T0 + 100) == 0
    assert limiter.reserve(USER, now=T0 + 100) == 0
    assert limiter.reserve(USER, now=T0 + 100) == 0
    assert limiter.reserve(USER, now=T0 + 100) > 0  # no more than the burst, however long


# ---------------------------------------------------------------- groups


def test_group_sustained_rate_is_20_per_minute() -> None:
    limiter = RateLimiter(Limits(group_per_minute=20))
    granted = grants(limiter, GROUP, T0, T0 + 600, 0.25)
    # Over ten minutes: 20 a minute (a sliding window lets each minute's 20 go at once).
    assert 200 <= len(granted) <= 220
    # A burst of new tickets goes out at once rather than spread over the minute...
    assert granted[19] == pytest.approx(T0 + 19 * 0.25)
    # ...and the 21st waits until the first has left the window.
    assert granted[20] == pytest.approx(T0 + 60.0, abs=0.26)


def test_group_never_more_than_20_in_any_minute() -> None:
    """SPEC §8: 20 messages a minute per group. Telegram (and the emulator) count them in
    a sliding minute, so no 60-second window may hold more than 20."""
    limiter = RateLimiter(Limits(group_per_minute=20))
    granted = grants(limiter, GROUP, T0, T0 + 180, 0.25)
    assert max_in_window(granted, 60.0) <= 20, (
        f"{max_in_window(granted, 60.0)} messages in one minute; first ones at "
        f"{[round(t - T0, 2) for t in granted[:25]]}"
    )


def test_group_of_60_per_minute_never_exceeds_60_in_a_minute() -> None:
    limiter = RateLimiter(Limits(group_per_minute=60))
    granted = grants(limiter, GROUP, T0, T0 + 200, 0.05)
    assert max_in_window(granted, 60.0) <= 60
    assert len(granted) >= 180


def test_group_chats_are_limited_separately_from_private_ones() -> None:
    limiter = RateLimiter(Limits(group_per_minute=1, private_burst=1))
    assert limiter.reserve(GROUP, now=T0) == 0
    assert limiter.reserve(GROUP, now=T0) > 0
    assert limiter.reserve(-1009, now=T0) == 0  # another group
    assert limiter.reserve(USER, now=T0) == 0
    assert limiter.reserve(GROUP, now=T0) == pytest.approx(60.0)


# ---------------------------------------------------------------- the whole bot


def test_global_limit_across_chats_sustained() -> None:
    limiter = RateLimiter(Limits(global_per_second=30, private_per_second=1, private_burst=1))
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
    limiter = RateLimiter(Limits(global_per_second=30, private_per_second=1, private_burst=1))
    granted: list[float] = []
    for n in range(1000):
        now = T0 + n * 0.005
        if limiter.reserve(10_000 + n, now=now) == 0:
            granted.append(now)
    assert max_in_window(granted, 1.0) <= 30, max_in_window(granted, 1.0)


def test_the_global_wait_is_reported_when_the_chat_is_free() -> None:
    limiter = RateLimiter(Limits(global_per_second=2, private_burst=5, private_per_second=5))
    assert limiter.reserve(USER, now=T0) == 0
    assert limiter.reserve(OTHER_USER, now=T0) == 0
    wait = limiter.reserve(3003, now=T0)  # a fresh chat, but the bot used its second
    assert wait == pytest.approx(1.0)
    assert limiter.reserve(3003, now=T0 + 1.0) == 0


def test_a_refusal_by_the_chat_takes_no_global_token() -> None:
    limiter = RateLimiter(Limits(global_per_second=2, private_burst=1, private_per_second=1))
    assert limiter.reserve(USER, now=T0) == 0
    for _ in range(5):
        assert limiter.reserve(USER, now=T0) > 0
    assert limiter.reserve(OTHER_USER, now=T0) == 0  # the bot still had a token left


# ---------------------------------------------------------------- 429


def test_pause_after_429_blocks_the_chat_for_retry_after() -> None:
    limiter = RateLimiter(Limits(private_per_second=1.0, private_burst=3))
    assert limiter.reserve(USER, now=T0) == 0
    limiter.pause(USER, 5, now=T0)
    assert limiter.reserve(USER, now=T0) == pytest.approx(5.0)
    assert limiter.reserve(USER, now=T0 + 4.9) == pytest.approx(0.1)
    assert limiter.reserve(USER, now=T0 + 5.0) == 0
    # Only one message right after the pause: the burst is not given back at once.
    assert limiter.reserve(USER, now=T0 + 5.0) > 0


def test_pause_concerns_only_that_chat() -> None:
    limiter = RateLimiter(Limits())
    limiter.pause(USER, 30, now=T0)
    assert limiter.reserve(USER, now=T0 + 1) == pytest.approx(29.0)
    assert limiter.reserve(OTHER_USER, now=T0 + 1) == 0
    assert limiter.reserve(GROUP, now=T0 + 1) == 0


def test_pause_of_a_group() -> None:
    limiter = RateLimiter(Limits(group_per_minute=20))
    limiter.pause(GROUP, 12, now=T0)
    assert limiter.reserve(GROUP, now=T0) == pytest.approx(12.0)
    assert limiter.reserve(GROUP, now=T0 + 12) == 0


def test_a_shorter_pause_does_not_shorten_a_longer_one() -> None:
    limiter = RateLimiter(Limits())
    limiter.pause(USER, 10, now=T0)
    limiter.pause(USER, 2, now=T0 + 1)
    assert limiter.reserve(USER, now=T0 + 3) == pytest.approx(7.0)


# ---------------------------------------------------------------- explicit clocks


def test_an_explicit_clock_starting_at_zero() -> None:
    """``now`` is a parameter: a caller with its own clock (a test, a simulated one) must get
    the same answers as with the default clock. A fresh chat may send at once."""
    limiter = RateLimiter(Limits(private_per_second=1.0, private_burst=3))
    assert limiter.reserve(USER, now=0.0) == 0
    assert limiter.reserve(USER, now=0.0) == 0
    assert limiter.reserve(USER, now=0.0) == 0
    assert limiter.reserve(USER, now=0.0) == pytest.approx(1.0)
    assert limiter.reserve(USER, now=1.0) == 0


def test_default_clock_a_fresh_chat_may_send_at_once() -> None:
    limiter = RateLimiter(Limits())
    assert limiter.reserve(USER) == 0
    assert limiter.reserve(GROUP) == 0
