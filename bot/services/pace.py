"""How fast each customer writes (SPEC §4): above ``CUSTOMER_MESSAGES_PER_MINUTE`` a customer
is asked, once per burst, to slow down, and what they send beyond the limit reaches staff
joined into as few messages as fit (``TicketService`` coalesces it); nothing is dropped.

A sliding window per customer, in memory, bounded (SPEC §8): it keeps at most ``limit``
timestamps per customer (enough to tell whether ``limit`` messages came within the window) and
at most ``max_customers`` customers. The map is an ``OrderedDict`` in order of last message:
a customer quiet for a whole window is forgotten (nothing of theirs is left to count), and
past the cap the one quiet longest goes first. That is a TTL + LRU map in a dozen lines, which
is why there is no cachetools dependency for it.

A message handled again (the next attempt of a failed update, a batch of updates handled a
second time: ``bot/polling.py``) gets the verdict it had the first time, counted once: the
last ``recent`` verdicts are kept by message.

The count is per process: with several instances each counts the messages it handles, so a
customer may write a little faster before being told. That is the price of keeping it out of
the database, where every message would cost a write more; the limit is a courtesy to staff,
not a security boundary (nothing is refused either way).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic


@dataclass(frozen=True, slots=True)
class Pace:
    over: bool  # beyond the limit: this message reaches staff coalesced
    warn: bool  # the first message beyond it in this burst: ask the customer to slow down


@dataclass(slots=True)
class _Window:
    stamps: deque[float]
    warned: bool = False
    album: str | None = None  # the album being received: its parts are one message
    album_over: bool = False
    last: float = field(default=0.0)


class CustomerPace:
    def __init__(
        self,
        per_minute: int,
        *,
        window: float = 60.0,
        max_customers: int = 10_000,
        recent: int = 1024,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.limit = per_minute
        self.window = window
        self.max_customers = max_customers
        self.clock = clock
        self._windows: OrderedDict[int, _Window] = OrderedDict()
        # More than a batch of updates (Telegram hands out at most 100 at a time).
        self.recent = recent
        self._verdicts: OrderedDict[tuple[int, int], Pace] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def hit(
        self, customer_id: int, *, album: str | None = None, message_id: int | None = None
    ) -> Pace:
        """Count one message of ``customer_id`` and say whether it is beyond the limit. The
        parts of one album (``album``: its media_group_id) count as one message; a message
        (``message_id``) seen already gets its verdict again, not counted twice."""
        if message_id is None:
            return self._count(customer_id, album)
        key = (customer_id, message_id)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._count(customer_id, album)
            if len(self._verdicts) > self.recent:
                self._verdicts.popitem(last=False)
        return verdict

    def _count(self, customer_id: int, album: str | None) -> Pace:
        now = self.clock()
        state = self._windows.get(customer_id)
        if state is None:
            state = _Window(deque(maxlen=self.limit))
            self._windows[customer_id] = state
        else:
            self._windows.move_to_end(customer_id)
        state.last = now
        self._forget_quiet(now)  # never this customer: they are the newest
        if album is not None and album == state.album:
            return Pace(over=state.album_over, warn=False)
        stamps = state.stamps
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        # ``limit`` messages already within the window: this one is beyond it.
        over = len(stamps) >= self.limit
        stamps.append(now)
        state.album, state.album_over = album, over
        if not over:
            state.warned = False  # back under the limit: the burst is over
            return Pace(over=False, warn=False)
        warn, state.warned = not state.warned, True
        return Pace(over=True, warn=warn)

    def _forget_quiet(self, now: float) -> None:
        windows = self._windows
        while windows:
            oldest_id, oldest = next(iter(windows.items()))
            if len(windows) <= self.max_customers and oldest.last > now - self.window:
                return
            del windows[oldest_id]
