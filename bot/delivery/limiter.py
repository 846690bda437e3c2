"""Telegram's sending limits (SPEC §8): about 30 messages a second for the bot, about one a
second in any one chat (a group too), and 20 a minute per group — kept so that no 429 is
provoked.

Written by hand because the sender needs to *ask* "how long until this chat may send" for
many chats at once, with its own clock, without blocking the others; the usual limiter
libraries (one awaitable limiter each, a sliding window or a bucket but not both with a
per-call spacing, a request counted as one whatever it posts) do not offer that.

- The bot as a whole: a sliding window, as Telegram counts it — never more than N messages
  in any second.
- A private chat: a token bucket — a burst of a few, then one a second.
- A group: calls at least a second apart (``60 / group_per_minute`` when a self-hosted
  server or a test allows it more than 60 a minute); never more than ``group_per_minute``
  messages in any minute (a sliding window); and those spread evenly: after an idle spell a
  burst of at most ``group_burst`` calls, then one message every ``60 / group_per_minute``
  seconds — not the whole minute's budget in twenty seconds and then silence. The burst comes
  back only as the group stays idle (one call per unused step), so it cannot recur under
  steady demand, and it is paid back before the even pace starts, so a minute of steady demand
  still sends exactly ``group_per_minute``.

A call that posts several messages (an album, ``copyMessages``) is one call for the
spacing but counts each message in the group's minute, its pacing and the bot's second; one
that posts more than a window can ever hold goes when the window is empty and fills it
(refusing it for good would lose it); a call that takes in more messages once reserved (a
relay joined with the ones queued behind it) asks :meth:`RateLimiter.room` how many may
join and counts them with :meth:`RateLimiter.charge`. A 429's ``retry_after``
(:meth:`RateLimiter.pause`) stops everything to that chat until it ends, and gives no burst
back at its end.

The per-chat limits are kept in a ``cachetools.TLRUCache`` whose time-to-use for each chat is
the moment its limit is back to a fresh one (window empty, spacing and pacing caught up, burst
regained, no pause): from then on it holds nothing a new one would not, so forgetting it
changes no decision. Only the chats that sent recently are kept — at most what the bot's own
rate allows within a minute — and ``MAX_CHATS`` is a hard cap on top.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from time import monotonic

from cachetools import TLRUCache

MAX_CHATS = 10_000  # far above what 30 messages/s leave busy within a minute
# Schedules add up steps in floating point: a call a microsecond "early" is on time, rather
# than refused for a rounding error and asked to come back in a microsecond.
_EPS = 1e-6


# Telegram counts a message when the request arrives, we when we take its slot: a request
# that takes a little longer to get there than the next one would land inside the window or
# spacing it was kept out of. Every window and spacing is kept this much longer (at most a
# fifth of it, so limits lifted for a benchmark stay lifted), and once the call is answered
# (:meth:`RateLimiter.land`) it counts from then: it arrived somewhere in between.
MARGIN = 0.2


def _slack(seconds: float, margin: float) -> float:
    return seconds + min(margin, margin * seconds)


def _until(moment: float, now: float) -> float:
    return moment - now if moment - now > _EPS else 0.0


@dataclass(slots=True)
class Bucket:
    """A private chat: ``capacity`` calls at once, then ``per_second``."""

    capacity: float
    per_second: float
    stamp: float
    tokens: float = -1.0
    flights: int = 0  # calls on their way (taken with ``flying``, not landed yet)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def wait_time(self, now: float, messages: int = 1) -> float:
        if not self.flights:  # no refill while a call is on its way: it counts from its answer
            gained = max(0.0, now - self.stamp) * self.per_second
            self.tokens = min(self.capacity, self.tokens + gained)
        self.stamp = max(self.stamp, now)
        # With calls on their way this is a lower bound: the refill waits for their answers.
        wait = (1 - self.tokens) / self.per_second
        return wait if wait > _EPS else 0.0

    def take(self, now: float, messages: int = 1, *, flying: bool = False) -> None:
        self.tokens -= 1  # one call, however many messages it posts
        self.flights += flying

    def pause(self, now: float, seconds: float) -> None:
        """Telegram said "retry after": no token until then."""
        self.wait_time(now)
        self.tokens = min(self.tokens, 1 - seconds * self.per_second)

    def resume(self) -> None:
        self.tokens = max(self.tokens, 0.0)

    def land(self, reserved: float, now: float, messages: int = 1, *, call: bool = True) -> None:
        """A call taken while flying was answered ``now``: refill starts again from here."""
        if call and self.flights:
            self.wait_time(now)
            self.flights -= 1

    def fresh_at(self) -> float:
        """When the bucket is full again: no different from a new one."""
        if self.flights:
            return math.inf
        return self.stamp + max(0.0, self.capacity - self.tokens) / self.per_second


@dataclass(slots=True)
class Window:
    """At most ``count`` messages in any ``seconds``."""

    count: int
    seconds: float
    sent: deque[float] = field(default_factory=deque)
    # Messages on their way (taken with ``flying``), by the moment they were taken: they stay
    # in the window until they are answered and count from then.
    flying: dict[float, int] = field(default_factory=dict)
    in_flight: int = 0

    def wait_time(self, now: float, messages: int = 1) -> float:
        while self.sent and _until(self.sent[0] + self.seconds, now) == 0:
            self.sent.popleft()
        # More than the window holds goes into an empty one (and fills it).
        over = len(self.sent) + self.in_flight + min(messages, self.count) - self.count
        if over <= 0:
            return 0.0
        if over <= len(self.sent):
            return _until(self.sent[over - 1] + self.seconds, now)
        return self.seconds  # those on their way leave a window after their answer, not sooner

    def take(self, now: float, messages: int = 1, *, flying: bool = False) -> None:
        taken = min(messages, self.count)
        if flying:
            self.flying[now] = self.flying.get(now, 0) + taken
            self.in_flight += taken
        else:
            self.sent.extend(repeat(now, taken))

    def room(self, now: float) -> int:
        self.wait_time(now)  # forgets what left the window
        return max(0, self.count - len(self.sent) - self.in_flight)

    def land(self, reserved: float, now: float, messages: int = 1) -> None:
        """Messages taken (flying) at ``reserved`` were answered ``now``: they count from now
        (every stamp kept is at most ``now``, so the window stays in order)."""
        landed = min(messages, self.count, self.flying.get(reserved, 0))
        if not landed:
            return
        if self.flying[reserved] == landed:
            del self.flying[reserved]
        else:
            self.flying[reserved] -= landed
        self.in_flight -= landed
        self.sent.extend(repeat(now, landed))

    def fresh_at(self) -> float:
        """When the last message leaves the window."""
        if self.in_flight:
            return math.inf
        return self.sent[-1] + self.seconds if self.sent else -math.inf


@dataclass(slots=True)
class Group:
    """A group: calls ``interval`` apart, ``window`` per minute, spread one per ``step``.

    ``due`` is when the group's schedule (one ``step`` per message sent) is caught up: a call
    is on schedule from then on. Ahead of schedule it needs one of ``credits``, the burst
    left; credits come back one per ``step`` the group stays idle past ``due``, up to
    ``burst - 1`` (the first call of a burst is on schedule)."""

    window: Window
    interval: float
    step: float
    burst: int
    due: float
    credits: int
    last: float = -math.inf
    paused_until: float = -math.inf
    flights: int = 0  # calls on their way: the next one is spaced from their answer
    # ... once this many are on their way: see RateLimiter._limit.
    flights_at_once: int = 1

    def wait_time(self, now: float, messages: int = 1) -> float:
        wait = max(
            _until(self.paused_until, now),
            _until(self.last + self.interval, now),
            self.window.wait_time(now, messages),
            self.interval if self.flights >= self.flights_at_once else 0.0,
        )
        if self.credits <= 0:  # no burst left: on schedule only
            wait = max(wait, _until(self.due, now))
        return wait

    def _idle_since(self) -> float:
        return max(self.due, self.paused_until)

    def take(self, now: float, messages: int = 1, *, flying: bool = False) -> None:
        since = self._idle_since()
        if _until(since, now) == 0:
            regained = int((now - since) / self.step + _EPS)
            self.credits = min(self.burst - 1, self.credits + regained)
        else:
            self.credits -= 1
        self.due = max(self.due, now) + min(messages, self.window.count) * self.step
        self.last = now
        self.window.take(now, messages, flying=flying)
        self.flights += flying

    def charge(self, now: float, messages: int, *, flying: bool = False) -> None:
        """``messages`` more in the call last taken."""
        self.due = max(self.due, now) + messages * self.step
        self.window.take(now, messages, flying=flying)

    def room(self, now: float) -> int:
        return 0 if _until(self.paused_until, now) else self.window.room(now)

    def pause(self, now: float, seconds: float) -> None:
        """Telegram said "retry after": nothing until then, and no burst right after."""
        self.paused_until = max(self.paused_until, now + seconds)
        self.credits = 0

    def resume(self) -> None:
        self.paused_until = -math.inf

    def land(self, reserved: float, now: float, messages: int = 1, *, call: bool = True) -> None:
        self.window.land(reserved, now, messages)
        if call and self.flights:
            self.flights -= 1
            self.last = max(self.last, now)

    def fresh_at(self) -> float:
        return max(
            self.window.fresh_at(),
            self.last + self.interval,
            self.paused_until,
            self._idle_since() + max(0, self.burst - 1 - self.credits) * self.step,
        )


@dataclass(frozen=True, slots=True)
class Limits:
    global_per_second: float = 30.0
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: float = 20.0
    group_burst: int = 3
    # Telegram's "about one message a second in a chat"; a group allowed more than 60 a
    # minute (a self-hosted server, a test) is spaced by its own budget instead.
    group_interval: float = 1.0
    margin: float = MARGIN  # seconds added to every window and spacing (see MARGIN)


Limit = Bucket | Group


def _fresh_at(chat_id: int, limit: Limit, now: float) -> float:
    return limit.fresh_at()


class RateLimiter:
    def __init__(self, limits: Limits, *, max_chats: int = MAX_CHATS) -> None:
        self.limits = limits
        self._global = Window(max(1, round(limits.global_per_second)), _slack(1.0, limits.margin))
        # The cache's clock is the time the limiter was last asked about (callers pass it).
        self._now = 0.0
        self._chats: TLRUCache[int, Limit] = TLRUCache(
            max_chats, ttu=_fresh_at, timer=lambda: self._now
        )

    def _limit(self, chat_id: int, now: float) -> Limit:
        self._now = now
        limit = self._chats.get(chat_id)
        if limit is None:
            limits = self.limits
            if chat_id < 0:  # groups and channels have negative ids
                step = 60.0 / limits.group_per_minute
                burst = max(1, limits.group_burst)
                interval = _slack(min(limits.group_interval, step), limits.margin)
                limit = Group(
                    Window(max(1, round(limits.group_per_minute)), _slack(60.0, limits.margin)),
                    interval=interval,
                    step=step,
                    burst=burst,
                    due=now,
                    credits=burst - 1,
                    # Spaced a second apart (Telegram's pace), a call waits for the answer to
                    # the one before: a late arrival cannot then land within its spacing. A
                    # group allowed far more (a self-hosted server, a benchmark) would
                    # otherwise be held to one call per round trip, below its own budget:
                    # it has as many on their way as its spacing starts within the margin
                    # (the lateness every spacing already allows for).
                    flights_at_once=max(1, int(limits.margin / interval)),
                )
            else:
                per_second = 1 / _slack(1 / limits.private_per_second, limits.margin)
                limit = Bucket(limits.private_burst, per_second, stamp=now)
        return limit

    def _keep(self, chat_id: int, limit: Limit) -> None:
        """(Re)file the chat's limit under its new time-to-use; a fresh one is not kept."""
        self._chats[chat_id] = limit

    def tracked_chats(self) -> int:
        """How many chats' limits are kept (for tests and metrics)."""
        self._chats.expire()
        return len(self._chats)

    def reserve(
        self,
        chat_id: int,
        now: float | None = None,
        *,
        edit: bool = False,
        messages: int = 1,
        flying: bool = False,
    ) -> float:
        """Take a slot for one call to ``chat_id`` that posts ``messages`` messages and return
        0, or return the seconds to wait (taking nothing). An edit is not a new message in the
        chat: it counts only towards the bot's overall rate.

        ``flying``: the caller will :meth:`land` the call when Telegram answers it; until then
        it counts as being sent right now, and from its answer on as sent then."""
        if messages < 1:
            raise ValueError("a call posts at least one message")
        now = monotonic() if now is None else now
        chat = self._limit(chat_id, now)
        wait = self._global.wait_time(now, messages)
        if not edit:
            wait = max(wait, chat.wait_time(now, messages))
        if wait > 0:
            return wait
        if not edit:
            chat.take(now, messages, flying=flying)
            self._keep(chat_id, chat)
        self._global.take(now, messages, flying=flying)
        return 0.0

    def room(self, chat_id: int, now: float | None = None) -> int:
        """How many more messages may go to ``chat_id`` at once besides a call just reserved:
        what is left of a group's minute and of the bot's second (a private chat counts calls,
        not messages). What a call about to go may take in (then :meth:`charge` them)."""
        now = monotonic() if now is None else now
        room = self._global.room(now)
        limit = self._limit(chat_id, now)
        return min(room, limit.room(now)) if isinstance(limit, Group) else room

    def charge(
        self, chat_id: int, messages: int, now: float | None = None, *, flying: bool = False
    ) -> None:
        """A reserved call took in ``messages`` more messages before it went: count them
        towards the group's minute and pace and the bot's second (not the chat's spacing: it
        is still one call). ``flying`` as for :meth:`reserve` (land them with ``call=False``)."""
        if messages <= 0:
            return
        now = monotonic() if now is None else now
        limit = self._limit(chat_id, now)
        if isinstance(limit, Group):
            limit.charge(now, messages, flying=flying)
            self._keep(chat_id, limit)
        self._global.take(now, messages, flying=flying)

    def land(
        self,
        chat_id: int,
        reserved: float,
        now: float | None = None,
        *,
        edit: bool = False,
        messages: int = 1,
        call: bool = True,
    ) -> None:
        """The call whose slot was taken (``flying``) at ``reserved`` — or, ``call=False``,
        the messages charged to it then — has been answered (or will never be made): Telegram
        counted it somewhere in between, so from now on it counts as sent ``now``. A busy
        process can send a call a good while after taking its slot, and Telegram can take
        long to answer: until the answer the call holds its place in every window and
        spacing, so the next one, sent on time, cannot arrive too close to it."""
        now = monotonic() if now is None else now
        self._now = now
        self._global.land(reserved, now, messages)
        limit = None if edit else self._chats.get(chat_id)
        if limit is not None:
            limit.land(reserved, now, messages, call=call)
            self._keep(chat_id, limit)

    def pause(self, chat_id: int, seconds: float, now: float | None = None) -> None:
        """Telegram answered 429 with ``retry_after``: nothing more to ``chat_id`` until then."""
        now = monotonic() if now is None else now
        limit = self._limit(chat_id, now)
        limit.pause(now, seconds)
        self._keep(chat_id, limit)

    def fresh_in(self, chat_id: int, now: float | None = None) -> float:
        """Seconds until what was sent to ``chat_id`` no longer limits it: from then on a
        limit kept anywhere else (another instance's) may start from new."""
        now = monotonic() if now is None else now
        self._now = now
        limit = self._chats.get(chat_id)
        return 0.0 if limit is None else _until(limit.fresh_at(), now)

    def share(self, senders: int) -> None:
        """The bot's overall rate, split between ``senders`` that send at once (instances):
        together they keep it."""
        self._global.count = max(1, math.floor(self.limits.global_per_second / max(1, senders)))

    def resume(self, chat_id: int, now: float | None = None) -> None:
        """End a pause early (a group that had removed the bot took it back); the chat's
        own rate still holds."""
        now = monotonic() if now is None else now
        limit = self._limit(chat_id, now)
        limit.resume()
        self._keep(chat_id, limit)

    # -- handing a chat over to another sender (another instance, or this one restarted) ----

    def memory(self, chat_id: int, now: float | None = None) -> dict[str, object] | None:
        """What the chat's limit remembers, as plain data relative to ``now`` (seconds ago,
        seconds ahead): another limiter :meth:`recall`\\ s it and goes on from there instead of
        waiting until this one is as good as new. ``None``: nothing to remember, or calls still
        on their way (their answers are not known: the chat waits until it is fresh)."""
        now = monotonic() if now is None else now
        self._now = now
        limit = self._chats.get(chat_id)
        if limit is None:
            return None
        limit.wait_time(now)  # forgets what left the window, refills the bucket
        if isinstance(limit, Bucket):
            if limit.flights:
                return None
            return {"tokens": limit.tokens}
        if limit.flights or limit.window.in_flight:
            return None
        return {
            "sent": [now - moment for moment in limit.window.sent],
            "last": min(now - limit.last, 3600.0),
            "due": max(0.0, limit.due - now),
            "credits": limit.credits,
            "paused": max(0.0, limit.paused_until - now),
        }

    def recall(
        self, chat_id: int, memory: dict[str, object], later: float, now: float | None = None
    ) -> None:
        """Go on from what another limiter remembered of the chat (:meth:`memory`), ``later``
        seconds ago. Added to what this one remembers: both sent there."""
        now = monotonic() if now is None else now
        limit = self._limit(chat_id, now)
        later = max(0.0, later)

        def number(key: str) -> float:
            value = memory.get(key, 0.0)
            return float(value) if isinstance(value, int | float) else 0.0

        if isinstance(limit, Bucket):
            if "tokens" not in memory:
                return
            refilled = number("tokens") + later * limit.per_second
            limit.tokens = min(limit.tokens, refilled, limit.capacity)
        else:
            if "sent" not in memory:
                return
            ages = memory.get("sent")
            sent = (
                [now - later - float(age) for age in ages if isinstance(age, int | float)]
                if isinstance(ages, list)
                else []
            )
            limit.window.sent = deque(sorted([*limit.window.sent, *sent]))
            limit.last = max(limit.last, now - later - number("last"))
            limit.due = max(limit.due, now - later + number("due"))
            limit.credits = min(limit.credits, int(number("credits")))
            limit.paused_until = max(limit.paused_until, now - later + number("paused"))
        self._keep(chat_id, limit)
