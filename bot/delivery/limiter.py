"""Telegram's sending limits: ~30 messages/s per bot, ~1/s per private chat (short bursts are
tolerated), 20/min per group.

Written by hand because the sender needs to *ask* "how long until this chat may send" for
many chats at once without blocking the others, which the usual limiter libraries (one
awaitable limiter each) do not offer. Groups and the bot as a whole use sliding windows, as
Telegram counts them: never more than N in any window. Private chats use a token bucket: a
burst of a few, then one a second.

The per-chat limits are kept in a ``cachetools.TLRUCache`` whose time-to-use for each chat is
the moment its limit is back to a fresh one (window empty, bucket full, no pause): from then on
it holds nothing a new one would not, so forgetting it changes no decision. Only the chats
that sent recently are kept — at most what the bot's own rate allows within a minute — and
``MAX_CHATS`` is a hard cap on top.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from time import monotonic

from cachetools import TLRUCache

MAX_CHATS = 10_000  # far above what 30 messages/s leave busy within a minute


@dataclass(slots=True)
class Bucket:
    capacity: float
    per_second: float
    stamp: float
    tokens: float = -1.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def wait_time(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.stamp) * self.per_second)
        self.stamp = max(self.stamp, now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second

    def take(self, now: float) -> None:
        self.tokens -= 1

    def pause(self, now: float, seconds: float) -> None:
        """Telegram said "retry after": no token until then."""
        self.wait_time(now)
        self.tokens = min(self.tokens, 1 - seconds * self.per_second)

    def fresh_at(self) -> float:
        """When the bucket is full again: no different from a new one."""
        return self.stamp + max(0.0, self.capacity - self.tokens) / self.per_second


@dataclass(slots=True)
class Window:
    """At most ``count`` sends in any ``seconds``."""

    count: int
    seconds: float
    sent: deque[float] = field(default_factory=deque)
    paused_until: float = 0.0

    def wait_time(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()
        wait = max(0.0, self.paused_until - now)
        if len(self.sent) >= self.count:
            wait = max(wait, self.sent[0] + self.seconds - now)
        return wait

    def take(self, now: float) -> None:
        self.sent.append(now)

    def pause(self, now: float, seconds: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)

    def fresh_at(self) -> float:
        """When the last send leaves the window and any pause is over."""
        return max(self.sent[-1] + self.seconds if self.sent else 0.0, self.paused_until)


@dataclass(frozen=True, slots=True)
class Limits:
    global_per_second: float = 30.0
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: float = 20.0


def _fresh_at(chat_id: int, limit: Bucket | Window, now: float) -> float:
    return limit.fresh_at()


class RateLimiter:
    def __init__(self, limits: Limits, *, max_chats: int = MAX_CHATS) -> None:
        self.limits = limits
        self._global = Window(max(1, round(limits.global_per_second)), 1.0)
        # The cache's clock is the time the limiter was last asked about (callers pass it).
        self._now = 0.0
        self._chats: TLRUCache[int, Bucket | Window] = TLRUCache(
            max_chats, ttu=_fresh_at, timer=lambda: self._now
        )

    def _limit(self, chat_id: int, now: float) -> Bucket | Window:
        self._now = now
        limit = self._chats.get(chat_id)
        if limit is None:
            if chat_id < 0:  # groups and channels have negative ids
                limit = Window(max(1, round(self.limits.group_per_minute)), 60.0)
            else:
                limit = Bucket(self.limits.private_burst, self.limits.private_per_second, stamp=now)
        return limit

    def _keep(self, chat_id: int, limit: Bucket | Window) -> None:
        """(Re)file the chat's limit under its new time-to-use; a fresh one is not kept."""
        self._chats[chat_id] = limit

    def tracked_chats(self) -> int:
        """How many chats' limits are kept (for tests and metrics)."""
        self._chats.expire()
        return len(self._chats)

    def reserve(self, chat_id: int, now: float | None = None, *, edit: bool = False) -> float:
        """Take a slot for one message to ``chat_id`` and return 0, or return the seconds to
        wait (taking nothing). An edit is not a new message in the chat: it counts only
        towards the bot's overall rate."""
        now = monotonic() if now is None else now
        chat = self._limit(chat_id, now)
        wait = self._global.wait_time(now)
        if not edit:
            wait = max(wait, chat.wait_time(now))
        if wait > 0:
            return wait
        if not edit:
            chat.take(now)
            self._keep(chat_id, chat)
        self._global.take(now)
        return 0.0

    def pause(self, chat_id: int, seconds: float, now: float | None = None) -> None:
        now = monotonic() if now is None else now
        limit = self._limit(chat_id, now)
        limit.pause(now, seconds)
        self._keep(chat_id, limit)

    def resume(self, chat_id: int, now: float | None = None) -> None:
        """End a pause early (a group that had removed the bot took it back); the chat's
        own rate still holds."""
        now = monotonic() if now is None else now
        limit = self._limit(chat_id, now)
        if isinstance(limit, Window):
            limit.paused_until = 0.0
        else:
            limit.tokens = max(limit.tokens, 0.0)
        self._keep(chat_id, limit)
