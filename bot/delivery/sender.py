"""The sender: background delivery of the outbox (SPEC §8).

A :class:`Outbox` records a Bot API call in the transaction of the change that causes it; the
:class:`Sender` delivers recorded calls in the background: in order within a stream (one chat,
one ticket), the most urgent first, within Telegram's limits, retrying network errors and 5xx,
waiting out 429 ``retry_after``, and across restarts. A delivery is leased before it is sent
and marked sent in the same commit that records what it produced, so two senders (two
processes) never send it twice. The one window left is a crash between Telegram's answer and
that commit: then the lease expires and the call is repeated (at least once beats lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import monotonic
from typing import Any, TypeVar

from aiogram import Bot, methods
from aiogram.exceptions import TelegramBadRequest, TelegramMigrateToChat, TelegramRetryAfter
from aiogram.methods.base import TelegramMethod
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import Delivery, is_mail_customer
from bot.db.repositories import ChatOwners, DeliveryRepo, DueHead, LinkRepo, SenderRepo
from bot.db.uow import transaction
from bot.delivery.client import retrying_enabled
from bot.delivery.intents import Refs
from bot.delivery.limiter import RateLimiter
from bot.delivery.mail import MailTransport, classify_mail
from bot.delivery.outcomes import (
    Failure,
    FailureKind,
    NothingToSendError,
    Outcomes,
    Placement,
    call_each,
)
from bot.delivery.telegram import build_calls, classify, harmless, message_ids

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=90)
# A sender beats every HEARTBEAT; one silent for DEAD_AFTER was killed: its leases are free.
HEARTBEAT = timedelta(seconds=2)
DEAD_AFTER = timedelta(seconds=10)
# Several instances: a chat is held this long past its holder's last beat (a killed holder's
# chats are free after it; one stopped in order frees each as its limit allows).
HOLD = timedelta(seconds=10)
REQUEST_TIMEOUT = 30
# Outcomes that could not be recorded are tried again this many times before their streams
# are let go (the lease then decides: at least once beats a chat stalled until a restart).
RECORD_ATTEMPTS = 5
# How often a group's queue is weighed against its budget, and a crowded one summed up.
CROWD_CHECK = 1.0
# At most this many deliveries queued behind a head leave with it (copyMessages takes 100).
JOIN_AT_MOST = 100
# A slot free this soon (seconds) is taken for then within the sweep, not left to the next
# one: no sweep comes sooner (see run()).
SOON = 0.005


# A delivery, or what the sender weighs of one before it takes it.
Queued = TypeVar("Queued", Delivery, DueHead)


def messages_in(delivery: Delivery | DueHead) -> int:
    """How many messages the delivery posts (an album, copyMessages: several) — what it takes
    of a chat's budget."""
    payload = delivery.payload  # a DueHead's is empty for calls that post one message
    if delivery.method == "SendMediaGroup":
        return max(1, len(payload.get("media") or ()))
    if delivery.method in ("CopyMessages", "ForwardMessages"):
        return max(1, len(payload.get("message_ids") or ()))
    return 1


@dataclass(frozen=True, slots=True)
class _Slot:
    """A slot of the limiter taken for a call (or messages charged to it), to land."""

    taken_at: float
    messages: int
    edit: bool = False
    call: bool = True  # False: messages a call took in (RateLimiter.charge)


def is_edit(delivery: Delivery | DueHead) -> bool:
    """An edit is no new message in its chat: only the bot's overall rate counts it."""
    return delivery.method.startswith("Edit")


def fairness_key(delivery: Delivery | DueHead) -> str:
    """Whose turn a delivery is: staff-side deliveries by the party they are about (one
    customer's many tickets share one turn), anything else by its stream."""
    if delivery.chat_id < 0:
        party = Refs.of(delivery).party
        if party is not None:
            return f"customer:{party}"
        if delivery.ticket_number is not None:
            return f"ticket:{delivery.ticket_number}"
    return delivery.stream


class Turns:
    """Round-robin between customers within a rank (SPEC §4: the staff-side queue is fair
    between customers within a priority). The heads of the streams that are due are ordered
    rank first, then by when their customer was last served (never served first), then by
    age; and a customer with several due heads (several tickets) gets one per round. So
    customer B's first message goes before customer A's fiftieth, however long A's backlog.

    Bounded (SPEC §8): only the ``cap`` customers served most recently are remembered; one
    forgotten counts as never served, which is right for someone who has been quiet longest.
    """

    def __init__(self, cap: int = 10_000) -> None:
        self.cap = cap
        self._served: OrderedDict[str, int] = OrderedDict()
        self._counter = itertools.count(1)
        # Whose turn each delivery is, by id and stream (a stream is one chat, or one ticket in
        # a group: the same party; an id SQLite gives again is another stream's, or the same
        # party's): a head waiting in a burst is ordered at every sweep. Bounded by ``cap``:
        # forgotten, it is worked out again.
        self._keys: dict[tuple[int, str], str] = {}

    def _key(self, head: Delivery | DueHead) -> str:
        key = self._keys.get((head.id, head.stream))
        if key is None:
            if len(self._keys) >= self.cap:
                self._keys.clear()
            key = self._keys[(head.id, head.stream)] = fairness_key(head)
        return key

    def order(self, heads: Iterable[Queued]) -> list[Queued]:
        ranks: dict[int, dict[str, list[Queued]]] = {}
        for head in sorted(heads, key=lambda d: (d.rank, d.id)):
            ranks.setdefault(head.rank, {}).setdefault(self._key(head), []).append(head)
        ordered: list[Queued] = []
        for rank in sorted(ranks):
            queues = ranks[rank]
            keys = sorted(queues, key=lambda key: (self._served.get(key, 0), queues[key][0].id))
            for round_ in itertools.zip_longest(*(queues[key] for key in keys)):
                ordered += [head for head in round_ if head is not None]
        return ordered

    def served(self, delivery: Delivery | DueHead) -> None:
        key = self._keys.pop((delivery.id, delivery.stream), None) or fairness_key(delivery)
        self._served[key] = next(self._counter)
        self._served.move_to_end(key)
        while len(self._served) > self.cap:
            self._served.popitem(last=False)


@dataclass(slots=True)
class _Outcome:
    delivery: Delivery
    ids: list[int] = field(default_factory=list)  # messages it made (all parts of a long text)
    failure: Failure | None = None
    topic: int | None = None  # a forum topic created for it on the way
    recreated: bool = False  # ... in place of one somebody deleted
    moved_to: int | None = None  # the chat became a supergroup with this id
    record_attempts: int = 0


class Sender:
    """Background delivery of the outbox. One per process; several processes may share a DB.

    Work is batched so the database is not the bottleneck: the due heads are read in one
    query, claimed in one transaction, and the outcomes of the sends that finish meanwhile are
    recorded together in one transaction. What an outcome means for the desk is not the
    sender's business: it calls the handlers registered in :class:`Outcomes`.
    """

    def __init__(
        self,
        *,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        limiter: RateLimiter,
        outcomes: Outcomes | None = None,
        read_session_factory: async_sessionmaker[AsyncSession] | None = None,
        concurrency: int = 32,
        poll_interval: float = 1.0,
        mail: MailTransport | None = None,
        share_chats: bool = False,
    ) -> None:
        self.bot = bot
        # Several instances on one database (SPEC §11): each chat is sent to by one sender at
        # a time, which keeps its limits; the bot's overall rate is split between the senders.
        self.share_chats = share_chats
        self._held: dict[int, datetime] = {}  # chat -> until when this sender holds it
        self._seen: set[int] = set()  # chats with something due since the last beat
        self._sending: dict[int, int] = {}  # delivery id -> chat, while in flight
        # delivery id -> when its first call's slot (and what joined it) was taken, to tell
        # the limiter when that call was answered (RateLimiter.land)
        self._slots: dict[int, list[_Slot]] = {}
        self.mail = mail  # customers who write by e-mail (SPEC §10); None: no such channel
        self.session_factory = session_factory
        self.read_session_factory = read_session_factory or session_factory
        self.clock = clock
        self.limiter = limiter
        self.outcomes = outcomes or Outcomes()
        self._topics: dict[tuple[int, int], int] = {}  # (chat, subject) -> topic, until recorded
        self._moved: dict[int, int] = {}  # old chat id -> new one (group upgrades)
        self._locked_out: set[int] = set()  # groups that refuse the bot, until they take it back
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self._in_flight: dict[int, str] = {}  # delivery id -> stream, until its outcome is kept
        self._outcomes: list[_Outcome] = []
        self._wake = asyncio.Event()
        self._released = asyncio.Event()  # an outcome was kept (see recorded())
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._loop_done = asyncio.Event()  # set while run() is not looping
        self._loop_done.set()
        self.instance_id = uuid.uuid4().hex
        self._last_beat: datetime | None = None
        self.turns = Turns()
        self._crowded: set[int] = set()  # groups whose queue outgrows their minute's budget
        self._crowd_checked = float("-inf")

    def wake(self) -> None:
        """Something was committed to the outbox: look now rather than at the next poll."""
        self._wake.set()

    def resume(self, chat_id: int) -> None:
        """A group that had removed the bot took it back: no more waiting on this chat here."""
        self.limiter.resume(chat_id)
        self.wake()

    async def run(self) -> None:
        # This task and the sends it starts handle their own retries without blocking.
        retrying_enabled.set(False)
        log.info("delivery sender started")
        self._loop_done.clear()
        try:
            while not self._stopping:
                wait = self.poll_interval
                try:
                    await self._record_outcomes()
                    wait = min(wait, await self._dispatch_due())
                except Exception:
                    log.exception("delivery sweep failed; retrying")
                    wait = 1.0
                self._wake.clear()
                if self._outcomes and not self._stopping:
                    if all(o.record_attempts for o in self._outcomes):
                        wait = min(wait, 1.0)  # the database hiccuped: not in a tight loop
                    else:
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(wait, SOON))
        finally:
            self._loop_done.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish what is in hand and record it. The loop is let finish its turn rather than
        cancelled: cancelled while recording, a sent message would be sent again later."""
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loop_done.wait(), timeout)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        try:
            await self._record_outcomes()
        except Exception:
            log.exception("the last delivery outcomes could not be recorded")
        if self._last_beat is not None and not self._in_flight:
            async with transaction(self.session_factory) as uow:
                session = uow.session
                await SenderRepo(session).forget(self.instance_id)
                if self.share_chats:
                    # Each chat free at once, with what its limit remembers for the next
                    # holder (another instance, or this one restarted) to go on from; one
                    # whose limit cannot say is held until the limit is as good as new.
                    now, at = self.clock.now(), monotonic()
                    fresh_in = {chat: self.limiter.fresh_in(chat, at) for chat in self._held}
                    memories = {
                        chat: memory
                        for chat, seconds in fresh_in.items()
                        if seconds > 0 and (memory := self.limiter.memory(chat, at)) is not None
                    }
                    owners = ChatOwners(session)
                    await owners.hand_over(self.instance_id, memories, now)
                    await owners.extend(
                        self.instance_id,
                        {
                            c: now + timedelta(seconds=s)
                            for c, s in fresh_in.items()
                            if s > 0 and c not in memories
                        },
                    )
                    await owners.release(
                        self.instance_id, [c for c, s in fresh_in.items() if not s]
                    )
                    self._held.clear()

    async def _beat(self, now: datetime) -> None:
        if self._last_beat is not None and now - self._last_beat < HEARTBEAT:
            return
        async with transaction(self.session_factory) as uow:
            session = uow.session
            repo = SenderRepo(session)
            await repo.beat(self.instance_id, now)
            await repo.forget_dead(now - LEASE * 10)
            if self.share_chats:
                await self._keep_chats(session, now)
                self.limiter.share(await repo.count_alive(now - DEAD_AFTER))
        self._last_beat = now

    async def _keep_chats(self, session: AsyncSession, now: datetime) -> None:
        """Go on holding the chats this sender is busy with, or whose limits still remember
        what it sent (another sender would start them from new); give back the others."""
        keep: dict[int, datetime] = {}
        done: list[int] = []
        sending = set(self._sending.values())
        for chat_id in self._held:
            fresh_in = timedelta(seconds=self.limiter.fresh_in(chat_id))
            if chat_id in self._seen or chat_id in sending or fresh_in:
                keep[chat_id] = now + max(HOLD, fresh_in)
            else:
                done.append(chat_id)
        owners = ChatOwners(session)
        await owners.extend(self.instance_id, keep)
        await owners.release(self.instance_id, done)
        await owners.forget_before(now - LEASE)
        self._held = keep
        self._seen.clear()

    async def _holding(self, heads: Sequence[DueHead], now: datetime) -> list[DueHead]:
        """The heads of the chats this sender holds, taking the free ones (SPEC §11)."""
        chats = {head.chat_id for head in heads}
        self._seen |= chats
        wanted = {chat for chat in chats if self._held.get(chat, now) <= now}
        if wanted:
            until = now + HOLD
            async with transaction(self.session_factory) as uow:
                owners = ChatOwners(uow.session)
                got = await owners.acquire(wanted, self.instance_id, now, until)
                memories = await owners.take_memories(got)
            # What a former holder's limits remembered: go on from there (SPEC §11).
            at = monotonic()
            for chat, memory in memories.items():
                left_at = _moment(memory.get("at"))
                later = (now - left_at).total_seconds() if left_at is not None else 0.0
                self.limiter.recall(chat, memory, later, at)
            for chat in wanted - got:
                self._held.pop(chat, None)
            self._held.update(dict.fromkeys(got, until))
        return [head for head in heads if head.chat_id in self._held]

    async def recorded(self, chat_id: int, *, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until what this sender has on its way to
        ``chat_id`` now is sent and recorded: a message that Telegram already shows, and
        someone may be replying to, is then known for what it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        on_the_way = {d for d, chat in self._sending.items() if chat == chat_id}
        while on_the_way & self._sending.keys():
            self._released.clear()
            left = deadline - loop.time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), left)

    def idle(self) -> bool:
        """Nothing in hand: no send running and no outcome waiting to be recorded."""
        return not (self._tasks or self._outcomes or self._in_flight)

    async def drain(self, timeout: float = 30.0) -> None:
        """Deliver everything due now (used on shutdown and by tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self._record_outcomes()
            await self._dispatch_due()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=1)
                continue
            if self._outcomes or self._in_flight:
                continue
            async with self.read_session_factory() as session:
                heads = await DeliveryRepo(session).due_heads(self.clock.now(), limit=1)
            if not heads:
                return
            await asyncio.sleep(0.05)

    async def _dispatch_due(self) -> float:
        """Start sending every due head the limits allow; return seconds until a retry."""
        now = self.clock.now()
        await self._beat(now)
        dead_before = now - DEAD_AFTER
        # First, so that a digest it writes is among the heads read next and goes first.
        await self._weigh_queues()
        now = self.clock.now()
        async with self.read_session_factory() as session:
            heads = await DeliveryRepo(session).due_heads(now, limit=200, dead_before=dead_before)
        if self.share_chats and heads:
            heads = await self._holding(heads, now)
        next_wait = min(self.poll_interval, HEARTBEAT.total_seconds())
        busy = set(self._in_flight.values())
        # Chats that refused one message now refuse any more: not asked again this sweep
        # (in a burst, a group has a call on its way and a head per ticket waiting).
        refused: set[int] = set()
        chosen: list[DueHead] = []
        started = monotonic()
        for head in self.turns.order(heads):
            if len(self._in_flight) + len(chosen) >= self.concurrency:
                next_wait = 0.01  # come back as soon as a slot frees
                break
            if head.stream in busy:
                continue
            edit, messages = is_edit(head), messages_in(head)
            if not edit and head.chat_id in refused:
                continue
            taken_at = monotonic()
            wait = self.limiter.reserve(
                head.chat_id, taken_at, edit=edit, messages=messages, flying=True
            )
            while wait > 0 and taken_at + wait - started <= SOON:
                # Free in a moment (a group allowed far more than Telegram's pace: its
                # spacing is microseconds): taken for then, and the call waits for it.
                taken_at += wait
                wait = self.limiter.reserve(
                    head.chat_id, taken_at, edit=edit, messages=messages, flying=True
                )
            if wait > 0:
                next_wait = min(next_wait, wait)
                if not edit and messages == 1:
                    refused.add(head.chat_id)
                continue
            self._slots[head.id] = [_Slot(taken_at, messages, edit=edit)]
            busy.add(head.stream)
            chosen.append(head)
            self.turns.served(head)
        if not chosen:
            return next_wait
        try:
            claimed = await self._claim(chosen, now, dead_before)
        except BaseException:
            for head in chosen:  # none of them goes now: their slots count from here
                self._land(head.chat_id, self._slots.pop(head.id, []))
            raise
        for head in chosen:
            row = claimed.get(head.id)
            if row is None:
                self._land(head.chat_id, self._slots.pop(head.id, []))
                continue  # another process took it
            self._in_flight[row.id] = row.stream
            self._sending[row.id] = row.chat_id
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return next_wait

    async def _claim(
        self, chosen: Sequence[DueHead], now: datetime, dead_before: datetime
    ) -> dict[int, Delivery]:
        """Lease the chosen heads and read the deliveries leased, by id (those another process
        took are not among them), with what the albums and coalesced relays among them hold
        now."""
        async with transaction(self.session_factory) as uow:
            session = uow.session
            repo = DeliveryRepo(session)
            claimed = await repo.claim_many(
                [head.id for head in chosen],
                now=now,
                until=self.clock.now() + LEASE,
                owner=self.instance_id,
                dead_before=dead_before,
            )
            # Read as leased: albums and coalesced relays take in more messages until they
            # are claimed, and what is sent is what they hold at the claim.
            if self.outcomes.join is not None:
                await self._join(
                    session, [row for row in claimed.values() if Refs.of(row).joins], now
                )
        return claimed

    def _land(self, chat_id: int, slots: Sequence[_Slot]) -> None:
        """Tell the limiter that these calls were answered (or will not be made)."""
        answered = monotonic()
        for slot in slots:
            self.limiter.land(
                chat_id,
                slot.taken_at,
                answered,
                edit=slot.edit,
                messages=slot.messages,
                call=slot.call,
            )

    async def _weigh_queues(self) -> None:
        """Which groups' queues outgrow what their budget sends in a minute (SPEC §8): more
        streams wait than messages the group takes in a minute (one stream's backlog leaves
        joined). Those are crowded, and what waits for them is summed up in a digest (the
        services do it)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._crowd_checked < CROWD_CHECK:
            return
        self._crowd_checked = loop.time()
        async with self.read_session_factory() as session:
            queued = await DeliveryRepo(session).streams_waiting_in_groups()
        budget = self.limiter.limits.group_per_minute
        crowded = {chat for chat, count in queued.items() if count > budget}
        for chat in crowded - self._crowded:
            log.warning("the queue of %s outgrows its budget: %d streams wait", chat, queued[chat])
        self._crowded = crowded
        if self.outcomes.digest is None:
            return
        for chat in sorted(crowded):
            async with transaction(self.session_factory) as uow:
                covered = await self.outcomes.digest(uow.session, chat)
            if covered:
                log.info("digest for %s now covers %d more queued messages", chat, covered)

    async def _join(self, session: AsyncSession, heads: Sequence[Delivery], now: datetime) -> None:
        """Let the services take into each head what waits right behind it in its stream: what
        they took leaves in that head's call and is done."""
        assert self.outcomes.join is not None
        followers = await DeliveryRepo(session).followers(heads, now, limit=JOIN_AT_MOST)
        for head in heads:
            if head.id not in followers:
                continue
            room = self.limiter.room(head.chat_id)
            taken = await self.outcomes.join(
                session,
                head,
                followers[head.id],
                crowded=head.chat_id in self._crowded,
                room=room,
            )
            if not taken:
                continue
            # The head took one message of the chat's budget when it was chosen; the rest now.
            charged_at, more = monotonic(), messages_in(head) - 1
            self.limiter.charge(head.chat_id, more, charged_at, flying=True)
            self._slots.setdefault(head.id, []).append(_Slot(charged_at, more, call=False))
            DeliveryRepo.merged(taken, into=head.id, now=now)

    async def _deliver(self, delivery: Delivery) -> None:
        outcome = _Outcome(delivery)
        try:
            outcome = await self._send(delivery)
        except Exception as exc:
            log.exception("delivery %s crashed", delivery.id)
            outcome.failure = Failure(FailureKind.RETRY, f"{type(exc).__name__}: {exc}", 300.0)
        finally:
            # A call never made (a failure before it) holds its slot no longer.
            self._land(delivery.chat_id, self._slots.pop(delivery.id, []))
            self._outcomes.append(outcome)
            self._wake.set()

    async def _send(self, delivery: Delivery) -> _Outcome:
        outcome = _Outcome(delivery)
        done_before: list[int] = list((delivery.result or {}).get("message_ids") or [])
        try:
            payload = dict(delivery.payload)
            if payload.get("chat_id") in self._moved:
                payload["chat_id"] = self._moved[payload["chat_id"]]
            refs = Refs.of(delivery)
            if self.outcomes.prepare is not None or refs.reply_to_delivery or refs.target_delivery:
                async with self.read_session_factory() as session:
                    await self._refer(session, refs, payload)
                    if self.outcomes.prepare is not None:
                        await self.outcomes.prepare(session, delivery, payload)
            if is_mail_customer(delivery.chat_id):
                return await self._send_mail(delivery, payload, outcome)
            calls = build_calls(delivery, payload)
            placement = await self._place(delivery)
            if placement is not None:
                outcome.topic = await self._topic(delivery, placement)
        except NothingToSendError as exc:
            outcome.failure = Failure(FailureKind.NOTHING_TO_DO, str(exc))
            return outcome
        except Exception as exc:  # noqa: BLE001 - creating the topic failed: classified
            return self._failed_with(outcome, exc)
        # Parts of a long text sent by an earlier attempt are not sent again.
        outcome.ids = done_before
        for index, call in enumerate(calls[len(done_before) :]):
            # The first call's slot was taken when the delivery was chosen (maybe for a
            # moment later: then it waits for it).
            slots = (
                [_Slot(await self._slot(delivery.chat_id), 1)]
                if index
                else self._slots.pop(delivery.id, [])
            )
            if slots and (early := slots[0].taken_at - monotonic()) > 0:
                await asyncio.sleep(early)
            if outcome.topic is not None:
                call.message_thread_id = outcome.topic  # type: ignore[attr-defined]
            try:
                outcome.ids += message_ids(await self._call(delivery, call, outcome))
            except TelegramBadRequest as exc:
                if not harmless(exc):
                    return self._failed_with(outcome, exc)
            except Exception as exc:  # noqa: BLE001 - every API error is classified and recorded
                return self._failed_with(outcome, exc)
            finally:
                self._land(delivery.chat_id, slots)
        return outcome

    async def _send_mail(
        self, delivery: Delivery, payload: dict[str, Any], outcome: _Outcome
    ) -> _Outcome:
        """A customer who writes by e-mail: the mail transport, not the Bot API."""
        if self.mail is None:
            outcome.failure = Failure(
                FailureKind.REFUSED, "the e-mail channel is off (MAIL_IMAP_URL is empty)"
            )
            return outcome
        try:
            outcome.ids = await self.mail.send(delivery, payload)
        except Exception as exc:  # noqa: BLE001 - every SMTP error is classified and recorded
            log.warning("mail of delivery %s failed: %s", delivery.id, exc)
            outcome.failure = classify_mail(exc, delivery)
        return outcome

    async def _slot(self, chat_id: int) -> float:
        """Wait for the chat's limits to take one more message (the next part of a long text);
        return when its slot was taken."""
        # The limiter says how long until the chat may take it; nothing else can wake us sooner.
        while (  # noqa: ASYNC110
            wait := self.limiter.reserve(chat_id, taken_at := monotonic(), flying=True)
        ) > 0:
            await asyncio.sleep(wait)
        return taken_at

    async def _refer(self, session: AsyncSession, refs: Refs, payload: dict[str, Any]) -> None:
        """Message ids known only once an earlier delivery of the same stream was sent: the
        message to reply to, or the one to edit."""
        repo = DeliveryRepo(session)
        if refs.reply_to_delivery is not None:
            earlier = await repo.get(refs.reply_to_delivery)
            ids = (earlier.result or {}).get("message_ids") if earlier else None
            if ids:
                payload["reply_parameters"] = {
                    "message_id": ids[0],
                    "allow_sending_without_reply": True,
                }
        if refs.target_delivery is not None:
            target = await repo.get(refs.target_delivery)
            ids = (target.result or {}).get("message_ids") if target else None
            if not ids:
                raise NothingToSendError(f"delivery {refs.target_delivery} sent no message")
            payload["message_id"] = ids[0]

    async def _call(self, delivery: Delivery, call: TelegramMethod[Any], outcome: _Outcome) -> Any:
        try:
            return await self.bot(call, request_timeout=REQUEST_TIMEOUT)
        except TelegramBadRequest as exc:
            if outcome.topic is None or "thread not found" not in exc.message:
                raise
        # Someone deleted the topic: a new one, and the message goes there.
        log.warning("topic of %s is gone; creating it again", delivery.stream)
        placement = await self._place(delivery, recreate=True)
        if placement is None or placement.create_named is None:
            raise NothingToSendError(f"no topic for {delivery.stream}")
        outcome.topic = await self._topic(delivery, placement, recreate=True)
        outcome.recreated = True
        call.message_thread_id = outcome.topic  # type: ignore[attr-defined]
        if "reply_parameters" in type(call).model_fields:
            call.reply_parameters = None  # type: ignore[attr-defined]  # was in the old topic
        return await self.bot(call, request_timeout=REQUEST_TIMEOUT)

    def _failed_with(self, outcome: _Outcome, exc: BaseException) -> _Outcome:
        delivery = outcome.delivery
        outcome.failure = classify(exc, delivery)
        if isinstance(exc, TelegramMigrateToChat):
            # The group became a supergroup with a new id: follow it and send there.
            self._moved[delivery.chat_id] = exc.migrate_to_chat_id
            outcome.moved_to = exc.migrate_to_chat_id
        elif outcome.failure.kind is FailureKind.FORBIDDEN and outcome.failure.retry_in:
            self._locked_out.add(delivery.chat_id)
            self.limiter.pause(delivery.chat_id, outcome.failure.retry_in)
        if isinstance(exc, TelegramRetryAfter):
            self.limiter.pause(delivery.chat_id, exc.retry_after)
        return outcome

    async def _place(self, delivery: Delivery, *, recreate: bool = False) -> Placement | None:
        """Whether the delivery goes to a forum topic (the services decide), and which."""
        if self.outcomes.place is None:
            return None
        if not recreate and delivery.ticket_number is not None:
            known = self._topics.get((delivery.chat_id, delivery.ticket_number))
            if known is not None:
                return Placement(thread_id=known)
        async with self.read_session_factory() as session:
            return await self.outcomes.place(session, delivery, recreate)

    async def _topic(
        self, delivery: Delivery, placement: Placement, *, recreate: bool = False
    ) -> int:
        """The topic's id, created the first time it is needed. All deliveries of one subject
        in a group are one stream, sent one at a time: a subject never gets two topics."""
        if placement.thread_id is not None and not recreate:
            return placement.thread_id
        assert placement.create_named is not None
        topic = await self.bot(
            methods.CreateForumTopic(chat_id=delivery.chat_id, name=placement.create_named),
            request_timeout=REQUEST_TIMEOUT,
        )
        if delivery.ticket_number is not None:
            self._topics[(delivery.chat_id, delivery.ticket_number)] = topic.message_thread_id
        return topic.message_thread_id

    async def _record_outcomes(self) -> None:
        """Keep what the finished sends did, all in one transaction (one by one if the batch
        cannot be kept, so one bad record never holds up the others). Whatever happens, the
        streams of the outcomes kept are let go; those that could not be kept are tried again
        (the message was sent: recording it beats sending it again) and, after a few tries,
        let go too, so no chat waits for a restart."""
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        kept: list[_Outcome] = []
        try:
            await self._keep(outcomes, isolated=False)
            kept = outcomes
        except Exception:
            log.exception("recording %d delivery outcomes failed; one by one", len(outcomes))
            for outcome in outcomes:
                try:
                    await self._keep([outcome], isolated=True)
                    kept.append(outcome)
                except Exception:
                    outcome.record_attempts += 1
                    if outcome.record_attempts < RECORD_ATTEMPTS:
                        self._outcomes.append(outcome)
                        log.exception(
                            "delivery %s: outcome not recorded; will retry", outcome.delivery.id
                        )
                    else:
                        log.exception(
                            "delivery %s: outcome lost; its stream goes on", outcome.delivery.id
                        )
                        kept.append(outcome)
        finally:
            for outcome in kept:
                self._release(outcome)

    def _release(self, outcome: _Outcome) -> None:
        self._in_flight.pop(outcome.delivery.id, None)
        self._sending.pop(outcome.delivery.id, None)
        self._released.set()
        number = outcome.delivery.ticket_number
        if number is not None and outcome.topic is not None:
            self._topics.pop((outcome.delivery.chat_id, number), None)

    async def _keep(self, outcomes: Sequence[_Outcome], *, isolated: bool) -> None:
        now = self.clock.now()
        # A group found back (access_back) is forgotten as locked out here; if this record is
        # undone, it must still be found back when the record is tried again.
        locked_out = set(self._locked_out)
        try:
            await self._keep_in_one(outcomes, now, isolated=isolated)
        except BaseException:
            self._locked_out = locked_out
            raise

    async def _keep_in_one(
        self, outcomes: Sequence[_Outcome], now: datetime, *, isolated: bool
    ) -> None:
        async with transaction(self.session_factory) as uow:
            session = uow.session
            repo = DeliveryRepo(session)
            # A plain send (most of them) is marked in one statement for all, and its handlers
            # get the delivery as claimed: what was sent. The rest are read and changed here.
            await repo.mark_sent([(o.delivery.id, o.ids) for o in outcomes if _plain(o)], now)
            rest = [o.delivery.id for o in outcomes if not _plain(o)]
            rows = await repo.get_many(rest) if rest else {}
            # Only sends, no savepoints: their handlers map messages (links) and read nothing
            # of them, so the links of them all are written in one statement at the end.
            gather = not rest and not isolated and not self._locked_out
            async with LinkRepo.gathering(session) if gather else contextlib.nullcontext():
                for outcome in outcomes:
                    await self._keep_one(session, outcome, rows, now, isolated=isolated)

    async def _keep_one(
        self,
        session: AsyncSession,
        outcome: _Outcome,
        rows: dict[int, Delivery],
        now: datetime,
        *,
        isolated: bool,
    ) -> None:
        if _plain(outcome):
            await self._sent(session, outcome.delivery, outcome.ids, isolated=isolated)
            return
        row = rows.get(outcome.delivery.id)
        if row is None:
            return
        if outcome.moved_to is not None:
            await call_each(
                session,
                self.outcomes.moved,
                row.chat_id,
                outcome.moved_to,
                isolated=isolated,
            )
        if outcome.topic is not None:
            await call_each(
                session,
                self.outcomes.topic_created,
                row,
                outcome.topic,
                outcome.recreated,
                isolated=isolated,
            )
        if outcome.failure is None:
            await self._succeeded(session, row, outcome.ids, now, isolated=isolated)
        else:
            await self._failed(session, row, outcome, now, isolated=isolated)

    async def _failed(
        self,
        session: AsyncSession,
        row: Delivery,
        outcome: _Outcome,
        now: datetime,
        *,
        isolated: bool,
    ) -> None:
        failure = outcome.failure
        assert failure is not None
        row.error = failure.error
        row.claimed_until = None
        row.claimed_by = None
        if outcome.ids:
            row.result = {"message_ids": outcome.ids}  # the parts sent: not sent again
        if failure.kind is FailureKind.FORBIDDEN and failure.retry_in is not None:
            # The handlers tell people once (they keep whether they did); the queue waits.
            await call_each(session, self.outcomes.access_lost, row.chat_id, isolated=isolated)
        if failure.retry_in is not None:
            row.not_before = now + timedelta(seconds=failure.retry_in)
            log.warning(
                "delivery %s to %s: %s; retry in %.1fs",
                row.id,
                row.chat_id,
                failure.error,
                failure.retry_in,
            )
            return
        row.status = "failed"
        log.error("delivery %s to %s failed for good: %s", row.id, row.chat_id, failure.error)
        await call_each(session, self.outcomes.failed, row, failure, isolated=isolated)

    async def _succeeded(
        self,
        session: AsyncSession,
        row: Delivery,
        ids: list[int],
        now: datetime,
        *,
        isolated: bool,
    ) -> None:
        row.status, row.sent_at, row.error = "sent", now, None
        row.result = {"message_ids": ids}
        await self._sent(session, row, ids, isolated=isolated)

    async def _sent(
        self, session: AsyncSession, row: Delivery, ids: list[int], *, isolated: bool
    ) -> None:
        if row.chat_id in self._locked_out:
            self._locked_out.discard(row.chat_id)
            await call_each(session, self.outcomes.access_back, row.chat_id, isolated=isolated)
        await call_each(session, self.outcomes.sent, row, ids, isolated=isolated)


def _plain(outcome: _Outcome) -> bool:
    """Sent, and nothing else happened on the way (no new topic, no move of the chat)."""
    return outcome.failure is None and outcome.topic is None and outcome.moved_to is None


def _moment(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
