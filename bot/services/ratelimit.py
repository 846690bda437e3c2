"""Telegram's sending limits as token buckets: ~30 messages/s per bot, ~1/s per private chat,
20/min per group. Written by hand because the limits are per chat and the sender needs to
*ask* "how long until this chat may send" without blocking the others, which the usual
limiter libraries (one awaitable bucket each) do not offer."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import monotonic


@dataclass(slots=True)
class Bucket:
    capacity: float
    per_second: float
    tokens: float = -1.0
    stamp: float = field(default_factory=monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def wait_time(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second

    def take(self) -> None:
        self.tokens -= 1

    def pause(self, now: float, seconds: float) -> None:
        """Telegram said "retry after": no token until then."""
        self.wait_time(now)
        self.tokens = min(self.tokens, 1 - seconds * self.per_second)


@dataclass(frozen=True, slots=True)
class Limits:
    global_per_second: float = 30.0
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: float = 20.0


class RateLimiter:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._global = Bucket(limits.global_per_second, limits.global_per_second)
        self._chats: dict[int, Bucket] = {}

    def _bucket(self, chat_id: int) -> Bucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if chat_id < 0:  # groups and channels have negative ids
                per_minute = self.limits.group_per_minute
                bucket = Bucket(max(1.0, per_minute), per_minute / 60)
            else:
                bucket = Bucket(self.limits.private_burst, self.limits.private_per_second)
            self._chats[chat_id] = bucket
        return bucket

    def reserve(self, chat_id: int, now: float | None = None) -> float:
        """Take a slot for one message to ``chat_id`` and return 0, or return the seconds to
        wait (taking nothing)."""
        now = monotonic() if now is None else now
        chat = self._bucket(chat_id)
        wait = max(chat.wait_time(now), self._global.wait_time(now))
        if wait > 0:
            return wait
        chat.take()
        self._global.take()
        return 0.0

    def pause(self, chat_id: int, seconds: float, now: float | None = None) -> None:
        self._bucket(chat_id).pause(monotonic() if now is None else now, seconds)
