"""Modules' hooks, driven from the tickets' durable history (``ticket_events``).

Each module has a cursor in ``desk_settings``: every history entry up to ``last`` is done for
it. Hooks therefore run only after the change is committed (uncommitted entries are not seen),
nothing is lost by a restart (the cursor is where it was) and the order is the history's.

Several instances: one at a time works on a module. It claims the cursor in a short
transaction (the row locked on PostgreSQL; SQLite has one writer anyway) by writing a lease
(its id and a deadline), runs the hooks outside any transaction (a slow hook holds no lock),
and moves the cursor in another short transaction if the lease is still its own. An instance
that dies mid-batch leaves a lease that expires; the next one starts from the cursor, so only
what the dead one did after its last move is done again.

PostgreSQL numbers history entries when they are written, not when they are committed: entry
11 may be visible while 10 is still being committed, or was rolled back and never will be. The
cursor does not pass such a gap until it has stood for ``gap_grace`` (a commit takes far less).

A hook that raises (or takes longer than ``hook_timeout``) gets its event again after the next
of ``retry_delays``; when those are used up the event is skipped for that module, and the
module's failure reported (log and managers). Other modules go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import DeskSetting, Ticket, is_mail_customer
from bot.db.models import TicketEvent as HistoryEntry
from bot.db.uow import transaction
from bot.modules.api import EventKind, Hook, ModuleContext, TicketEvent, TicketInfo
from bot.modules.report import Trouble

log = logging.getLogger(__name__)

RETRY_DELAYS = (
    timedelta(seconds=10),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
)
LEASE = timedelta(minutes=5)
GAP_GRACE = timedelta(seconds=10)
HOOK_TIMEOUT = 60.0
BATCH = 50

Report = Callable[[Trouble], Awaitable[Any]]


def cursor_key(name: str) -> str:
    return f"mod:{name}:cursor"


@dataclass(slots=True)
class Cursor:
    """A module's place in the history (kept as JSON in ``desk_settings``)."""

    last: int  # every entry up to this one is done
    done: list[str] = field(default_factory=list)  # kinds of entry ``last + 1`` already done
    attempts: int = 0  # failures of the next kind to do
    retry_at: datetime | None = None
    error: str = ""
    owner: str = ""  # the instance working on it, until ``until``
    until: datetime | None = None
    gap_since: datetime | None = None  # since when entry ``last + 1`` is missing

    @classmethod
    def parse(cls, text: str) -> Cursor:
        data = json.loads(text)
        return cls(
            last=int(data["last"]),
            done=list(data.get("done") or []),
            attempts=int(data.get("attempts") or 0),
            retry_at=_moment(data.get("retry_at")),
            error=str(data.get("error") or ""),
            owner=str(data.get("owner") or ""),
            until=_moment(data.get("until")),
            gap_since=_moment(data.get("gap_since")),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "last": self.last,
                "done": self.done,
                "attempts": self.attempts,
                "retry_at": _iso(self.retry_at),
                "error": self.error,
                "owner": self.owner,
                "until": _iso(self.until),
                "gap_since": _iso(self.gap_since),
            }
        )


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True, slots=True)
class Entry:
    """A history entry, read in the claim (plain values: used after its session is gone)."""

    id: int
    ticket_number: int
    at: datetime
    type: str
    actor_id: int | None
    actor_role: str
    old: str | None
    new: str | None

    @classmethod
    def of(cls, row: HistoryEntry) -> Entry:
        return cls(
            id=row.id,
            ticket_number=row.ticket_number,
            at=row.at,
            type=row.type,
            actor_id=row.actor_id,
            actor_role=row.actor_role,
            old=row.old,
            new=row.new,
        )


def kinds_of(entry: Entry, *, first_answer: bool) -> list[EventKind]:
    """What a history entry is for modules (most entries, messages say, are nothing)."""
    if entry.type == "created":
        return [EventKind.CREATED]
    if entry.type == "status":
        kinds = [EventKind.STATUS_CHANGED]
        if entry.new == "resolved":
            kinds.append(EventKind.RESOLVED)
        if entry.new == "closed":
            kinds.append(EventKind.CLOSED)
        return kinds
    if entry.type == "staff_message" and first_answer:
        return [EventKind.FIRST_ANSWER]
    if entry.type == "rating":
        return [EventKind.RATED]
    return []


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A loaded module with hooks."""

    name: str
    hooks: dict[EventKind, Hook]
    context: ModuleContext


@dataclass(slots=True)
class _Failed:
    entry: Entry
    kind: EventKind
    error: str


class HookRunner:
    def __init__(
        self,
        subscribers: Sequence[Subscriber],
        *,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        report: Report,
        recovered: Callable[[str], Awaitable[Any]] | None = None,
        retry_delays: Sequence[timedelta] = RETRY_DELAYS,
        lease: timedelta = LEASE,
        gap_grace: timedelta = GAP_GRACE,
        hook_timeout: float = HOOK_TIMEOUT,
        interval: float = 0.5,
        batch: int = BATCH,
    ) -> None:
        self.subscribers = list(subscribers)
        self.sessions = sessions
        self.read_sessions = read_sessions
        self.clock = clock
        self.report = report
        self.recovered = recovered  # a module whose skipped event was reported works again
        self._reported: set[str] = set()
        self.retry_delays = tuple(retry_delays)
        self.lease = lease
        self.gap_grace = gap_grace
        self.hook_timeout = hook_timeout
        self.interval = interval
        self.batch = batch
        self.instance = uuid.uuid4().hex[:12]
        self._wake = asyncio.Event()
        # What this instance last saw of each cursor: a round with nothing new reads one
        # number (the newest entry) instead of claiming every cursor.
        self._seen: dict[str, int] = {}
        self._next_try: dict[str, datetime] = {}

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        """A module met for the first time starts at the end of the history: it hears what
        happens from now on, not the desk's past."""
        if not self.subscribers:
            return
        newest = await self._newest()
        for subscriber in self.subscribers:
            key = cursor_key(subscriber.name)
            try:
                async with transaction(self.sessions) as uow:
                    row = await uow.session.get(DeskSetting, key)
                    if row is None:
                        uow.session.add(DeskSetting(key=key, value=Cursor(last=newest).dump()))
            except IntegrityError:
                pass  # another instance made it at the same moment

    async def run(self) -> None:
        while True:
            busy = False
            try:
                busy = await self.round()
            except Exception:  # the database away for a moment: the next round
                log.exception("modules' hooks: a round failed; trying again")
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def round(self) -> bool:
        """One look at every module; True if some has more to do at once."""
        if not self.subscribers:
            return False
        newest = await self._newest()
        now = self.clock.now()
        due_now = []
        for subscriber in self.subscribers:
            due = self._next_try.get(subscriber.name)
            if due is not None and due > now:
                continue  # a retry, a gap, or another instance's lease: not before then
            if due is None and newest <= self._seen.get(subscriber.name, -1):
                continue  # nothing new
            due_now.append(subscriber)
        # Side by side: a slow module does not hold up the others' hooks.
        done = await asyncio.gather(*(self._step_alone(s) for s in due_now))
        return any(done)

    async def _step_alone(self, subscriber: Subscriber) -> bool:
        try:
            return await self.step(subscriber)
        except Exception:  # one module's trouble is not the others'
            log.exception("module %s: its hooks could not run this round", subscriber.name)
            return False

    async def step(self, subscriber: Subscriber) -> bool:
        """Claim the module's cursor, run its hooks on what is new, move the cursor. True if
        a full batch was done (more may wait)."""
        claim = await self._claim(subscriber)
        if claim is None:
            return False
        cursor, entries = claim
        before = (cursor.last, list(cursor.done))
        failure, complete = await self._run_hooks(subscriber, cursor, entries)
        await self._settle(subscriber, cursor, failure, moved=(cursor.last, cursor.done) != before)
        return failure is None and (not complete or len(entries) >= self.batch)

    # -- the claim -----------------------------------------------------------------------------

    async def _claim(self, subscriber: Subscriber) -> tuple[Cursor, list[Entry]] | None:
        name = subscriber.name
        now = self.clock.now()
        async with transaction(self.sessions) as uow:
            session = uow.session
            row = (
                await session.execute(
                    select(DeskSetting).where(DeskSetting.key == cursor_key(name)).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                # Not started (a runner made after start()): from the end, as start() does.
                newest = await _newest_in(session)
                session.add(DeskSetting(key=cursor_key(name), value=Cursor(last=newest).dump()))
                self._seen[name] = newest
                return None
            cursor = Cursor.parse(row.value)
            self._seen[name] = cursor.last
            if cursor.owner and cursor.owner != self.instance and _after(cursor.until, now):
                self._next_try[name] = cursor.until or now
                return None
            if _after(cursor.retry_at, now):
                self._next_try[name] = cursor.retry_at or now
                return None
            self._next_try.pop(name, None)
            rows = (
                await session.execute(
                    select(HistoryEntry)
                    .where(HistoryEntry.id > cursor.last)
                    .order_by(HistoryEntry.id)
                    .limit(self.batch)
                )
            ).scalars()
            entries = [Entry.of(r) for r in rows]
            if not entries:
                return None
            if entries[0].id != cursor.last + 1:
                # A gap: an entry still being committed, or rolled back (PostgreSQL).
                if cursor.gap_since is None:
                    cursor.gap_since = now
                if now - cursor.gap_since < self.gap_grace:
                    row.value = cursor.dump()
                    self._next_try[name] = cursor.gap_since + self.gap_grace
                    return None
                log.warning(
                    "module %s: history entries %s..%s never appeared; passing them",
                    name,
                    cursor.last + 1,
                    entries[0].id - 1,
                )
                cursor.last, cursor.done, cursor.attempts = entries[0].id - 1, [], 0
            cursor.gap_since = None
            entries = _contiguous(entries)
            cursor.owner, cursor.until = self.instance, now + self.lease
            row.value = cursor.dump()
        return cursor, entries

    # -- the hooks -----------------------------------------------------------------------------

    async def _run_hooks(
        self, subscriber: Subscriber, cursor: Cursor, entries: list[Entry]
    ) -> tuple[_Failed | None, bool]:
        """Run the hooks on ``entries`` in order, moving ``cursor`` (in memory) past each one
        done; stop at a failure, or while the lease has time for one more hook."""
        margin = timedelta(seconds=self.hook_timeout) + self.lease / 10
        for entry in entries:
            if cursor.until is not None and self.clock.now() + margin > cursor.until:
                return None, False
            first = (
                EventKind.FIRST_ANSWER in subscriber.hooks
                and entry.type == "staff_message"
                and await self._first_answer(entry)
            )
            kinds = [k for k in kinds_of(entry, first_answer=first) if k in subscriber.hooks]
            todo = [kind for kind in kinds if kind.value not in cursor.done]
            ticket = await self._ticket(entry.ticket_number) if todo else None
            for kind in todo:
                if ticket is None:
                    break  # no such ticket (cannot be, but never stop on it)
                event = TicketEvent(
                    id=entry.id,
                    kind=kind,
                    at=entry.at,
                    ticket=ticket,
                    actor_id=entry.actor_id,
                    actor_role=entry.actor_role,
                    old=entry.old,
                    new=entry.new,
                )
                try:
                    await asyncio.wait_for(
                        subscriber.hooks[kind](event, subscriber.context), self.hook_timeout
                    )
                except Exception as error:  # noqa: BLE001 - a module's failure is isolated
                    log.warning(
                        "module %s: hook %s failed on entry %s: %r",
                        subscriber.name,
                        kind.value,
                        entry.id,
                        error,
                    )
                    return _Failed(entry, kind, _describe(error)), False
                cursor.done.append(kind.value)
            cursor.last, cursor.done = entry.id, []
        return None, True

    async def _first_answer(self, entry: Entry) -> bool:
        async with self.read_sessions() as session:
            first = await session.scalar(
                select(func.min(HistoryEntry.id)).where(
                    HistoryEntry.ticket_number == entry.ticket_number,
                    HistoryEntry.type == "staff_message",
                )
            )
        return first == entry.id

    async def _ticket(self, number: int) -> TicketInfo | None:
        async with self.read_sessions() as session:
            ticket = await session.get(Ticket, number)
            return None if ticket is None else ticket_info(ticket)

    # -- moving the cursor ---------------------------------------------------------------------

    async def _settle(
        self, subscriber: Subscriber, mine: Cursor, failure: _Failed | None, *, moved: bool
    ) -> None:
        name = subscriber.name
        now = self.clock.now()
        skipped: Trouble | None = None
        async with transaction(self.sessions) as uow:
            row = (
                await uow.session.execute(
                    select(DeskSetting).where(DeskSetting.key == cursor_key(name)).with_for_update()
                )
            ).scalar_one()
            current = Cursor.parse(row.value)
            if current.owner != self.instance:
                # Our lease ran out and another instance took over: its word stands.
                log.warning("module %s: the cursor was taken over; leaving it", name)
                return
            cursor = Cursor(last=mine.last, done=list(mine.done))
            if failure is not None:
                # The tries of this kind of this entry (a failure after progress is its first).
                attempts = 1 if moved else current.attempts + 1
                if attempts > len(self.retry_delays):
                    # Used up: the event is skipped for this module, and reported.
                    cursor.done.append(failure.kind.value)
                    skipped = Trouble(
                        name=name,
                        stage="hook",
                        error=failure.error,
                        ticket=failure.entry.ticket_number,
                        event=failure.kind.value,
                        attempts=attempts,
                    )
                else:
                    cursor.attempts = attempts
                    cursor.error = failure.error
                    cursor.retry_at = now + self.retry_delays[attempts - 1]
                    self._next_try[name] = cursor.retry_at
            row.value = cursor.dump()
            self._seen[name] = cursor.last
        if skipped is not None:
            self._next_try[name] = now
            self._reported.add(name)
            await self.report(skipped)
        elif failure is None and name in self._reported and self.recovered is not None:
            self._reported.discard(name)
            await self.recovered(name)  # its next failure is news again

    async def _newest(self) -> int:
        async with self.read_sessions() as session:
            return await _newest_in(session)


async def _newest_in(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(HistoryEntry.id), 0))) or 0)


def _contiguous(entries: list[Entry]) -> list[Entry]:
    """The entries up to the first gap (the rest wait for the next claim)."""
    kept = entries[:1]
    for entry in entries[1:]:
        if entry.id != kept[-1].id + 1:
            break
        kept.append(entry)
    return kept


def _after(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment > now


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "TimeoutError: the hook took too long"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def ticket_info(ticket: Ticket) -> TicketInfo:
    return TicketInfo(
        number=ticket.number,
        status=ticket.status.value,
        priority=int(ticket.priority),
        kind=ticket.kind.value,
        topic=ticket.topic,
        account_number=ticket.account_number,
        customer_id=ticket.customer_id,
        by_email=is_mail_customer(ticket.customer_id),
        assignee_id=ticket.assignee_id,
        locale=ticket.locale,
        created_at=ticket.created_at,
        first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        rating=ticket.rating,
        tariff=ticket.tariff,
    )
