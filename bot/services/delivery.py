"""The one path of outgoing messages that matter (SPEC §8).

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
import base64
import contextlib
import itertools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot, methods
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import BufferedInputFile, Message, MessageId
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import Delivery, MessageLink, Ticket
from bot.db.repositories import (
    DeliveryRepo,
    DeskSettings,
    EventRepo,
    SenderRepo,
    TicketRepo,
    UserRepo,
)
from bot.middlewares.retry import retrying_enabled
from bot.services.desk_config import DeskConfig
from bot.services.ratelimit import RateLimiter
from bot.views.labels import STATUS_ICON

log = logging.getLogger(__name__)

# Lower ranks go first: a customer who is waiting for us, then tickets by priority (1..4).
RANK_CUSTOMER_WAITING = 0
RANK_DEFAULT = 5

LEASE = timedelta(seconds=90)
# A sender beats every HEARTBEAT; one silent for DEAD_AFTER was killed: its leases are free.
HEARTBEAT = timedelta(seconds=2)
DEAD_AFTER = timedelta(seconds=10)
REQUEST_TIMEOUT = 30
MAX_BACKOFF = 300.0
ALBUM_GRACE = timedelta(seconds=1.0)
# A coalesced relay waits this long for more of the customer's messages before it may go.
COALESCE_GRACE = timedelta(seconds=2.0)


class Outbox:
    """Records deliveries in the caller's session; the caller's commit makes them real."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def add(
        self,
        session: AsyncSession,
        *,
        chat_id: int,
        method: type[TelegramMethod[Any]],
        payload: dict[str, Any],
        purpose: str,
        ticket_number: int | None = None,
        rank: int = RANK_DEFAULT,
        stream: str | None = None,
        context: dict[str, Any] | None = None,
        delay: timedelta = timedelta(0),
    ) -> Delivery:
        now = self.clock.now()
        delivery = Delivery(
            created_at=now,
            chat_id=chat_id,
            stream=stream or stream_of(chat_id, ticket_number),
            rank=rank,
            method=method.__name__,
            payload=payload,
            status="pending",
            attempts=0,
            not_before=now + delay,
            purpose=purpose,
            ticket_number=ticket_number,
            context=context,
        )
        DeliveryRepo(session).add(delivery)
        return delivery


def to_customer(
    outbox: Outbox,
    session: AsyncSession,
    ticket: Ticket,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    *,
    purpose: str = "notice",
) -> Delivery:
    """A message to a ticket's customer: urgent, in their chat's stream, mapped to the ticket."""
    payload: dict[str, Any] = {"chat_id": ticket.customer_id, "text": text}
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    return outbox.add(
        session,
        chat_id=ticket.customer_id,
        method=methods.SendMessage,
        payload=payload,
        purpose=purpose,
        ticket_number=ticket.number,
        rank=RANK_CUSTOMER_WAITING,
        context={"customer_chat_id": ticket.customer_id},
    )


def stream_of(chat_id: int, ticket_number: int | None) -> str:
    """Private chats: one stream per chat (a customer reads one conversation in order).
    Groups: one stream per ticket, so one busy ticket does not hold up the others."""
    if chat_id > 0 or ticket_number is None:
        return str(chat_id)
    return f"{chat_id}:{ticket_number}"


def fairness_key(delivery: Delivery) -> str:
    """Whose turn a delivery is: staff-side deliveries by customer (one customer's many tickets
    share one turn), anything else by its stream."""
    if delivery.chat_id < 0:
        customer = (delivery.context or {}).get("customer_chat_id")
        if customer is not None:
            return f"customer:{customer}"
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

    def order(self, heads: Iterable[Delivery]) -> list[Delivery]:
        ranks: dict[int, dict[str, list[Delivery]]] = {}
        for head in sorted(heads, key=lambda d: (d.rank, d.id)):
            ranks.setdefault(head.rank, {}).setdefault(fairness_key(head), []).append(head)
        ordered: list[Delivery] = []
        for rank in sorted(ranks):
            queues = ranks[rank]
            keys = sorted(queues, key=lambda key: (self._served.get(key, 0), queues[key][0].id))
            for round_ in itertools.zip_longest(*(queues[key] for key in keys)):
                ordered += [head for head in round_ if head is not None]
        return ordered

    def served(self, delivery: Delivery) -> None:
        key = fairness_key(delivery)
        self._served[key] = next(self._counter)
        self._served.move_to_end(key)
        while len(self._served) > self.cap:
            self._served.popitem(last=False)


def _upload(value: Any) -> Any:
    """Files travel in the outbox as base64 (the payload is JSON) and leave as uploads."""
    if isinstance(value, dict) and "__file_b64" in value:
        return BufferedInputFile(base64.b64decode(value["__file_b64"]), value["filename"])
    return value


def topic_name(ticket: Ticket) -> str:
    """``✅ #12 · Cannot log in``: the status shows in the list of topics (128 characters)."""
    return f"{STATUS_ICON[ticket.status]} #{ticket.number} · {ticket.topic}"[:128]


def _grows(delivery: Delivery) -> bool:
    """A delivery that later messages may join while it waits (an album, a coalesced relay)."""
    context = delivery.context or {}
    return bool(context.get("media_group_id") or context.get("coalesced"))


def _harmless(exc: TelegramBadRequest) -> bool:
    """Answers that mean the call has nothing left to do."""
    return any(
        text in exc.message
        for text in ("message is not modified", "TOPIC_NOT_MODIFIED", "TOPIC_CLOSED")
    )


def _message_ids(result: Any) -> list[int]:
    items = result if isinstance(result, list) else [result]
    return [item.message_id for item in items if isinstance(item, Message | MessageId)]


class _NothingToEditError(Exception):
    """An edit of a message that was never sent (its delivery failed)."""


@dataclass(slots=True)
class _Failure:
    retry_in: float | None  # seconds until the next try; None: give up
    error: str


@dataclass(slots=True)
class _Outcome:
    delivery: Delivery
    result: Any = None
    failure: _Failure | None = None
    topic: int | None = None  # a forum topic created for the ticket on the way
    recreated: bool = False  # ... in place of one somebody deleted


class Sender:
    """Background delivery of the outbox. One per process; several processes may share a DB.

    Work is batched so the database is not the bottleneck: the due heads are read in one
    query, claimed in one transaction, and the outcomes of the sends that finish meanwhile are
    recorded together in one transaction.
    """

    def __init__(
        self,
        *,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        limiter: RateLimiter,
        staff_chat_id: int,
        desk: DeskConfig | None = None,
        read_session_factory: async_sessionmaker[AsyncSession] | None = None,
        concurrency: int = 32,
        poll_interval: float = 1.0,
    ) -> None:
        self.bot = bot
        self.session_factory = session_factory
        self.read_session_factory = read_session_factory or session_factory
        self.clock = clock
        self.limiter = limiter
        self._staff_chat_id = staff_chat_id
        self.desk = desk
        self._topics: dict[int, int] = {}  # ticket -> topic created, until it is recorded
        self._moved: dict[int, int] = {}  # old chat id -> new one (group upgrades)
        self.on_undelivered: Callable[[AsyncSession, Delivery], Awaitable[None]] | None = None
        self.on_topic_recreated: Callable[[AsyncSession, Ticket], Awaitable[None]] | None = None
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self._in_flight: dict[int, str] = {}  # delivery id -> stream, until its outcome is kept
        self._outcomes: list[_Outcome] = []
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._staff_moved: int | None = None
        self._loop_done = asyncio.Event()  # set while run() is not looping
        self._loop_done.set()
        self.instance_id = uuid.uuid4().hex
        self._last_beat: datetime | None = None
        self.turns = Turns()

    @property
    def staff_chat_id(self) -> int:
        # The desk's id follows the group when Telegram upgrades it to a supergroup.
        return self.desk.staff_chat_id if self.desk is not None else self._staff_chat_id

    def wake(self) -> None:
        """Something was committed to the outbox: look now rather than at the next poll."""
        self._wake.set()

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
                if self._outcomes:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.005))
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
            async with self.session_factory() as session, session.begin():
                await SenderRepo(session).forget(self.instance_id)

    async def _beat(self, now: datetime) -> None:
        if self._last_beat is not None and now - self._last_beat < HEARTBEAT:
            return
        async with self.session_factory() as session, session.begin():
            repo = SenderRepo(session)
            await repo.beat(self.instance_id, now)
            await repo.forget_dead(now - LEASE * 10)
        self._last_beat = now

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
        async with self.read_session_factory() as session:
            heads = await DeliveryRepo(session).due_heads(now, limit=200, dead_before=dead_before)
        next_wait = min(self.poll_interval, HEARTBEAT.total_seconds())
        busy = set(self._in_flight.values())
        chosen: list[Delivery] = []
        for head in self.turns.order(heads):
            if len(self._in_flight) + len(chosen) >= self.concurrency:
                next_wait = 0.01  # come back as soon as a slot frees
                break
            if head.stream in busy:
                continue
            wait = self.limiter.reserve(head.chat_id, edit=head.method.startswith("Edit"))
            if wait > 0:
                next_wait = min(next_wait, wait)
                continue
            busy.add(head.stream)
            chosen.append(head)
            self.turns.served(head)
        if not chosen:
            return next_wait
        async with self.session_factory() as session, session.begin():
            repo = DeliveryRepo(session)
            claimed = await repo.claim_many(
                [head.id for head in chosen],
                now=now,
                until=self.clock.now() + LEASE,
                owner=self.instance_id,
                dead_before=dead_before,
            )
            # Albums and coalesced relays take in more messages until they are claimed: what
            # is sent is what they hold at the claim, not at the read above.
            growing = [h.id for h in chosen if h.id in claimed and _grows(h)]
            fresh = await repo.get_many(growing) if growing else {}
        for head in chosen:
            if head.id not in claimed:
                continue  # another process took it
            if head.id in fresh:
                head.payload, head.context = fresh[head.id].payload, fresh[head.id].context
            head.attempts += 1
            self._in_flight[head.id] = head.stream
            task = asyncio.create_task(self._deliver(head))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return next_wait

    async def _deliver(self, delivery: Delivery) -> None:
        outcome = _Outcome(delivery)
        try:
            outcome = await self._send(delivery)
        except Exception as exc:
            log.exception("delivery %s crashed", delivery.id)
            outcome.failure = _Failure(MAX_BACKOFF, f"{type(exc).__name__}: {exc}")
        finally:
            self._outcomes.append(outcome)
            self._wake.set()

    async def _send(self, delivery: Delivery) -> _Outcome:
        outcome = _Outcome(delivery)
        try:
            call = await self._build_call(delivery)
            if self._in_topic(delivery, call):
                outcome.topic = await self._topic_of(delivery)
                call.message_thread_id = outcome.topic  # type: ignore[attr-defined]
        except _NothingToEditError as exc:
            outcome.failure = _Failure(None, str(exc))
            return outcome
        except Exception as exc:  # noqa: BLE001 - creating the topic failed: classified
            outcome.failure = self._classify(exc, delivery)
            return outcome
        try:
            try:
                outcome.result = await self.bot(call, request_timeout=REQUEST_TIMEOUT)
            except TelegramBadRequest as exc:
                if outcome.topic is None or "thread not found" not in exc.message:
                    raise
                # Someone deleted the ticket's topic: a new one, and the message goes there.
                log.warning("topic of ticket %s is gone; creating it again", delivery.ticket_number)
                outcome.topic = await self._topic_of(delivery, recreate=True)
                outcome.recreated = True
                call.message_thread_id = outcome.topic  # type: ignore[attr-defined]
                if "reply_parameters" in type(call).model_fields:
                    call.reply_parameters = None  # type: ignore[attr-defined]  # was in the old topic
                outcome.result = await self.bot(call, request_timeout=REQUEST_TIMEOUT)
        except TelegramBadRequest as exc:
            if not _harmless(exc):
                outcome.failure = self._classify(exc, delivery)
        except Exception as exc:  # noqa: BLE001 - every API error is classified and recorded
            outcome.failure = self._classify(exc, delivery)
        return outcome

    def _in_topic(self, delivery: Delivery, call: TelegramMethod[Any]) -> bool:
        """A ticket's messages in a forum staff group go to the ticket's own topic."""
        return (
            self.desk is not None
            and self.desk.staff_is_forum
            and delivery.ticket_number is not None
            and delivery.chat_id == self.desk.staff_chat_id
            and "message_thread_id" in type(call).model_fields
            and getattr(call, "message_thread_id", None) is None
            and not delivery.method.startswith("Edit")
        ) or delivery.method in ("EditForumTopic", "CloseForumTopic")

    async def _topic_of(self, delivery: Delivery, *, recreate: bool = False) -> int:
        """The ticket's topic, created the first time it is needed. All staff-side deliveries
        of a ticket are one stream, sent one at a time: a ticket never gets two topics."""
        number = delivery.ticket_number
        assert number is not None
        if not recreate:
            if number in self._topics:
                return self._topics[number]
            async with self.read_session_factory() as session:
                ticket = await TicketRepo(session).get(number)
                if ticket is not None and ticket.staff_thread_id is not None:
                    return ticket.staff_thread_id
        async with self.read_session_factory() as session:
            ticket = await TicketRepo(session).get(number)
        if ticket is None:
            raise _NothingToEditError(f"ticket {number} is gone")
        topic = await self.bot(
            methods.CreateForumTopic(chat_id=delivery.chat_id, name=topic_name(ticket)),
            request_timeout=REQUEST_TIMEOUT,
        )
        self._topics[number] = topic.message_thread_id
        return topic.message_thread_id

    async def _build_call(self, delivery: Delivery) -> TelegramMethod[Any]:
        payload = {key: _upload(value) for key, value in delivery.payload.items()}
        if payload.get("chat_id") in self._moved:
            payload["chat_id"] = self._moved[payload["chat_id"]]
        context = delivery.context or {}
        if any(
            context.get(key)
            for key in ("reply_to_card", "reply_to_delivery", "target_delivery", "edit_card")
        ):
            async with self.read_session_factory() as session:
                await self._resolve_references(session, delivery, payload, context)
        if delivery.method == "SendMediaGroup" and len(payload.get("media") or ()) == 1:
            # An "album" that turned out to have one part: Telegram wants 2-10 items.
            sources = context.get("customer_message_ids") or context.get("staff_message_ids") or []
            if context.get("from_chat_id") and sources:
                call: dict[str, Any] = {
                    "chat_id": payload["chat_id"],
                    "from_chat_id": context["from_chat_id"],
                    "message_id": sources[0],
                }
                if "reply_parameters" in payload:
                    call["reply_parameters"] = payload["reply_parameters"]
                return methods.CopyMessage.model_validate(call)
        method_class: type[TelegramMethod[Any]] = getattr(methods, delivery.method)
        return method_class.model_validate(payload)

    async def _resolve_references(
        self,
        session: AsyncSession,
        delivery: Delivery,
        payload: dict[str, Any],
        context: dict[str, Any],
    ) -> None:
        """Message ids known only once earlier deliveries of the same stream were sent."""
        reply_to: int | None = None
        if context.get("reply_to_card") and delivery.ticket_number is not None:
            ticket = await TicketRepo(session).get(delivery.ticket_number)
            reply_to = ticket.card_message_id if ticket is not None else None
        elif context.get("reply_to_delivery"):
            earlier = await DeliveryRepo(session).get(int(context["reply_to_delivery"]))
            ids = (earlier.result or {}).get("message_ids") if earlier else None
            reply_to = ids[0] if ids else None
        if context.get("edit_card") and delivery.ticket_number is not None:
            ticket = await TicketRepo(session).get(delivery.ticket_number)
            if ticket is None or ticket.card_message_id is None:
                raise _NothingToEditError(f"ticket {delivery.ticket_number} has no card")
            payload["message_id"] = ticket.card_message_id
        if context.get("target_delivery"):
            target = await DeliveryRepo(session).get(int(context["target_delivery"]))
            ids = (target.result or {}).get("message_ids") if target else None
            if not ids:
                raise _NothingToEditError(f"delivery {context['target_delivery']} sent no message")
            payload["message_id"] = ids[0]
        if reply_to is not None:
            payload["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }

    def _classify(self, exc: Exception, delivery: Delivery) -> _Failure:
        backoff = min(MAX_BACKOFF, 2.0 ** min(delivery.attempts, 9))
        if isinstance(exc, TelegramRetryAfter):
            self.limiter.pause(delivery.chat_id, exc.retry_after)
            return _Failure(float(exc.retry_after), f"429 retry after {exc.retry_after}")
        if isinstance(exc, TelegramMigrateToChat):
            # The group became a supergroup with a new id: follow it and send there.
            self._moved[delivery.chat_id] = exc.migrate_to_chat_id
            if self.desk is not None and self.desk.staff_chat_id == delivery.chat_id:
                self.desk.staff_chat_id = exc.migrate_to_chat_id
                self._staff_moved = exc.migrate_to_chat_id  # kept with the next outcomes
            return _Failure(0.0, f"chat migrated to {exc.migrate_to_chat_id}")
        if isinstance(exc, TelegramServerError | TelegramNetworkError | TimeoutError):
            return _Failure(backoff, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, TelegramForbiddenError | TelegramNotFound | TelegramBadRequest):
            return _Failure(None, f"{type(exc).__name__}: {exc.message}")
        return _Failure(backoff, f"{type(exc).__name__}: {exc}")

    async def _record_outcomes(self) -> None:
        """Keep what the finished sends did, all in one transaction (one by one if the batch
        cannot be kept, so one bad record never holds up the others)."""
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        try:
            await self._keep(outcomes, link=True)
        except Exception:
            log.exception("recording %d delivery outcomes failed; one by one", len(outcomes))
            for outcome in outcomes:
                try:
                    await self._keep([outcome], link=True)
                except Exception:
                    log.exception("delivery %s: its message map is lost", outcome.delivery.id)
                    await self._keep([outcome], link=False)
        for outcome in outcomes:
            self._in_flight.pop(outcome.delivery.id, None)
            if outcome.delivery.ticket_number is not None and outcome.topic is not None:
                self._topics.pop(outcome.delivery.ticket_number, None)

    async def _keep(self, outcomes: Sequence[_Outcome], *, link: bool) -> None:
        now = self.clock.now()
        async with self.session_factory() as session, session.begin():
            if self._staff_moved is not None:
                # The staff group was upgraded to a supergroup: every process follows it.
                await DeskSettings(session).put("staff_chat_id", str(self._staff_moved))
                self._staff_moved = None
            rows = await DeliveryRepo(session).get_many([o.delivery.id for o in outcomes])
            for outcome in outcomes:
                row = rows.get(outcome.delivery.id)
                if row is None:
                    continue
                if outcome.topic is not None and row.ticket_number is not None:
                    ticket = await TicketRepo(session).get(row.ticket_number)
                    if ticket is not None:
                        ticket.staff_thread_id = outcome.topic
                        ticket.staff_chat_id = row.chat_id
                        if outcome.recreated and self.on_topic_recreated is not None:
                            # The card went with the old topic: staff need its buttons here.
                            # It must never cost the record of what was sent.
                            try:
                                async with session.begin_nested():
                                    await self.on_topic_recreated(session, ticket)
                            except Exception:
                                log.exception("ticket %s: card not posted again", ticket.number)
                if outcome.failure is None:
                    await self._succeeded(session, row, outcome.result, now, link=link)
                else:
                    await self._failed(session, row, outcome.failure, now)

    async def _failed(
        self, session: AsyncSession, row: Delivery, failure: _Failure, now: datetime
    ) -> None:
        row.error = failure.error
        row.claimed_until = None
        row.claimed_by = None
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
        await self._record_undelivered(session, row, now)

    async def _record_undelivered(
        self, session: AsyncSession, row: Delivery, now: datetime
    ) -> None:
        if row.chat_id > 0 and row.error and row.error.startswith("TelegramForbiddenError"):
            user = await UserRepo(session).get(row.chat_id)
            if user is not None and user.blocked_bot_at is None:
                user.blocked_bot_at = now
        if row.ticket_number is not None:
            EventRepo(session).record(
                row.ticket_number,
                at=now,
                type="delivery_failed",
                actor_id=None,
                actor_role="system",
                new=row.purpose,
                details={"chat_id": row.chat_id, "error": row.error},
            )
            if row.chat_id > 0 and self.on_undelivered is not None:
                # Staff see in the ticket that the customer did not get it, not silence.
                try:
                    async with session.begin_nested():
                        await self.on_undelivered(session, row)
                except Exception:
                    log.exception("could not tell staff that delivery %s failed", row.id)

    async def _succeeded(
        self, session: AsyncSession, row: Delivery, result: Any, now: datetime, *, link: bool
    ) -> None:
        ids = _message_ids(result)
        row.status, row.sent_at, row.error = "sent", now, None
        row.result = {"message_ids": ids}
        # Edits and other calls make no new message: nothing to map.
        if (
            not link
            or row.ticket_number is None
            or not ids
            or not row.method.startswith(("Send", "Copy", "Forward"))
        ):
            return
        if row.purpose == "card":
            ticket = await TicketRepo(session).get(row.ticket_number)
            if ticket is not None:
                ticket.card_message_id = ids[0]
                ticket.staff_chat_id = row.chat_id
        customer_chat_id = (row.context or {}).get("customer_chat_id")
        if customer_chat_id is None:
            ticket = await TicketRepo(session).get(row.ticket_number)
            if ticket is None:
                return
            customer_chat_id = ticket.customer_id
        self._link(session, row, int(customer_chat_id), ids, now)

    def _link(
        self,
        session: AsyncSession,
        row: Delivery,
        customer_chat_id: int,
        ids: Sequence[int],
        now: datetime,
    ) -> None:
        """Remember which message is which, so replies on either side find their ticket."""
        assert row.ticket_number is not None
        if row.chat_id == customer_chat_id:
            # Copies of staff messages remember their source, so edits and replies find it.
            staff_ids: list[int] = list((row.context or {}).get("staff_message_ids") or [])
            links = [
                {
                    "customer_message_id": message_id,
                    "staff_chat_id": self.staff_chat_id if index < len(staff_ids) else None,
                    "staff_message_id": staff_ids[index] if index < len(staff_ids) else None,
                }
                for index, message_id in enumerate(ids)
            ]
        else:
            sources: list[int] = list((row.context or {}).get("customer_message_ids") or [])
            links = [
                {
                    "customer_message_id": sources[index] if index < len(sources) else None,
                    "staff_chat_id": row.chat_id,
                    "staff_message_id": message_id,
                }
                for index, message_id in enumerate(ids)
            ]
        # Messages joined into one coalesced text: each still belongs to the ticket (a reply
        # to it finds the ticket), but none is "the" source of the joined copy, so an edit
        # of one never overwrites the others.
        links += [
            {"customer_message_id": message_id, "staff_chat_id": None, "staff_message_id": None}
            for message_id in (row.context or {}).get("coalesced_message_ids") or []
        ]
        for link in links:
            session.add(
                MessageLink(
                    ticket_number=row.ticket_number,
                    direction=row.purpose,
                    customer_chat_id=customer_chat_id,
                    created_at=now,
                    **link,
                )
            )
