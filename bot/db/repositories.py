"""Queries of the desk, one small class per aggregate. They take a session and never commit."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from bot.db.models import (
    Account,
    Attachment,
    ChatOwner,
    Delivery,
    DeskSetting,
    DialogState,
    FailedUpdate,
    Macro,
    MailMessage,
    MessageLink,
    Organisation,
    ProcessedUpdate,
    SenderInstance,
    Ticket,
    TicketEvent,
    User,
)
from bot.domain.ids import parse_id
from bot.domain.tickets import OPEN_STATUSES, Status, is_open


class ReadAhead:
    """What a batch of updates read in one go at its start (``UnitOfWork.read_ahead``), kept in
    its session (``session.info``) for the rest of the transaction.

    Only a batch without savepoints reads ahead: nothing can roll back part of its transaction,
    so what this holds stays true while every write to these rows goes through the repositories
    below, which keep it up to date: users (``UserRepo.upsert``), dialog rows
    (``DialogRepo.put``, ``forget_before``), new tickets (``TicketRepo.add``; a ticket's status
    is read from the row itself, and a closed ticket never opens again), handled updates
    (``UpdateLog.first_time``), the last pending delivery of a stream (``DeliveryRepo.add``,
    ``last_unclaimed``: a coalesced relay grows message by message). It lives and dies with
    the transaction; and a batch runs on SQLite, holding the write lock from its start
    (``BEGIN IMMEDIATE``), so no other process changes these rows meanwhile either (no sender
    can claim a delivery this batch added or found unclaimed)."""

    KEY = "read_ahead"

    def __init__(self) -> None:
        self.users: dict[int, User | None] = {}
        self.open_tickets: dict[int, list[Ticket]] = {}  # customer -> open at the start
        # Every dialog row under these key prefixes is in ``dialogs``; a key missing there is
        # absent from the table.
        self.dialog_prefixes: set[str] = set()
        self.dialogs: dict[str, DialogState | None] = {}
        self.update_ids: set[int] = set()  # updates looked up
        self.handled: set[int] = set()  # ... already handled (or taken by this batch)
        self.to_mark: dict[int, datetime] = {}  # ... taken by this batch: marked at its end
        self.last_pending: dict[str, Delivery] = {}  # stream -> its last pending delivery

    @classmethod
    def of(cls, session: AsyncSession) -> ReadAhead | None:
        read_ahead = session.info.get(cls.KEY)
        return read_ahead if isinstance(read_ahead, ReadAhead) else None

    @classmethod
    def start(cls, session: AsyncSession) -> ReadAhead:
        read_ahead = cls.of(session)
        if read_ahead is None:
            read_ahead = session.info[cls.KEY] = cls()
        return read_ahead

    @classmethod
    def stop(cls, session: AsyncSession) -> None:
        """From here on, read as you go (say, before a savepoint that may be rolled back)."""
        read_ahead = session.info.pop(cls.KEY, None)
        if isinstance(read_ahead, ReadAhead) and read_ahead.to_mark:
            # Updates taken but not marked yet: dropping them would let them be handled twice.
            raise RuntimeError("a batch that read ahead took updates: no savepoint in it")

    def dialog_prefix_of(self, key: str) -> str | None:
        """The read-ahead prefix ``key`` is directly under, if any."""
        prefix = key[: key.rfind(":") + 1]
        return prefix if prefix in self.dialog_prefixes else None


class UserRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is not None and user_id in read_ahead.users:
            return read_ahead.users[user_id]
        return await self.session.get(User, user_id)

    async def read_ahead(self, user_ids: Iterable[int]) -> None:
        """Load these users at once for the batch's transaction (see :class:`ReadAhead`)."""
        read_ahead = ReadAhead.start(self.session)
        wanted = set(user_ids) - read_ahead.users.keys()
        if not wanted:
            return
        read_ahead.users.update(dict.fromkeys(wanted))
        read_ahead.users.update(await self.get_many(wanted))

    async def get_many(self, ids: Iterable[int]) -> dict[int, User]:
        wanted = list(ids)
        if not wanted:
            return {}
        result = await self.session.execute(select(User).where(User.id.in_(wanted)))
        return {user.id: user for user in result.scalars()}

    async def upsert(
        self,
        *,
        user_id: int,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
        now: datetime,
    ) -> User:
        user = await self.get(user_id)
        if user is None:
            # A newcomer's first updates may be handled at once in two transactions (two
            # chats, two instances): the second insert waits for the first and does nothing,
            # and both read the one row.
            postgresql = self.session.get_bind().dialect.name == "postgresql"
            insert = (pg_insert if postgresql else sqlite_insert)(User).values(
                id=user_id,
                first_name=first_name,
                last_name=last_name,
                username=username,
                language_code=language_code,
                created_at=now,
                updated_at=now,
            )
            user = await self.session.scalar(
                insert.on_conflict_do_nothing(index_elements=[User.id]).returning(User)
            )
            if user is None:  # inserted by the other one
                user = await self.session.get_one(User, user_id)
            read_ahead = ReadAhead.of(self.session)
            if read_ahead is not None:
                read_ahead.users[user_id] = user
        fresh = (first_name, last_name, username, language_code)
        if (user.first_name, user.last_name, user.username, user.language_code) != fresh:
            user.first_name, user.last_name, user.username, user.language_code = fresh
            user.updated_at = now
        if user.blocked_bot_at is not None:
            user.blocked_bot_at = None  # writing to the bot means it is unblocked
        return user


class StaffDirectory:
    """Staff known to the desk: people who acted in the staff group, and its admins."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known(self, limit: int = 40) -> Sequence[User]:
        result = await self.session.execute(
            select(User)
            .where(User.staff_seen_at.is_not(None))
            .order_by(User.first_name)
            .limit(limit)
        )
        return result.scalars().all()


class TicketRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, number: int, *, with_attachments: bool = False, for_update: bool = False
    ) -> Ticket | None:
        """``for_update`` locks the row on PostgreSQL, so two staff pressing Take at once
        are served one after the other (SQLite has one writer at a time anyway)."""
        options = [selectinload(Ticket.attachments)] if with_attachments else []
        return await self.session.get(
            Ticket, number, options=options, with_for_update=for_update or None
        )

    async def get_many(self, numbers: Sequence[int]) -> Sequence[Ticket]:
        if not numbers:
            return []
        result = await self.session.execute(select(Ticket).where(Ticket.number.in_(numbers)))
        return result.scalars().all()

    async def by_intake_key(self, key: str) -> Ticket | None:
        result = await self.session.execute(select(Ticket).where(Ticket.intake_key == key))
        return result.scalar_one_or_none()

    async def first_created_at(self) -> datetime | None:
        """When the oldest ticket was opened (answered from the index on created_at)."""
        return await self.session.scalar(select(func.min(Ticket.created_at)))

    async def add(self, ticket: Ticket) -> Ticket:
        self.session.add(ticket)
        await self.session.flush()
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is not None:
            read_ahead.open_tickets.pop(ticket.customer_id, None)  # read again when asked
        return ticket

    async def resolved_before(self, moment: datetime, limit: int = 500) -> Sequence[int]:
        result = await self.session.execute(
            select(Ticket.number)
            .where(Ticket.status == Status.RESOLVED.value, Ticket.resolved_at <= moment)
            .order_by(Ticket.resolved_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def unreminded_resolved_before(self, moment: datetime, limit: int = 500) -> Sequence[int]:
        result = await self.session.execute(
            select(Ticket.number)
            .where(
                Ticket.status == Status.RESOLVED.value,
                Ticket.resolved_at <= moment,
                Ticket.reminded_at.is_(None),
            )
            .order_by(Ticket.resolved_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def awaiting_first_response(self, limit: int = 1000) -> Sequence[Ticket]:
        """Tickets whose SLA alerts may still be due: no answer yet, not yet breached."""
        result = await self.session.execute(
            select(Ticket)
            .where(
                Ticket.status.in_((Status.NEW.value, Status.IN_PROGRESS.value)),
                Ticket.first_response_at.is_(None),
                Ticket.sla_breached_at.is_(None),
            )
            .order_by(Ticket.created_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def open_for_customer(self, customer_id: int) -> Sequence[Ticket]:
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is not None and customer_id in read_ahead.open_tickets:
            # Open at the start of the batch and, a closed ticket never reopening, still the
            # only candidates (new ones drop the entry: see ``add``).
            return [t for t in read_ahead.open_tickets[customer_id] if is_open(t.status)]
        result = await self.session.execute(
            select(Ticket)
            .where(Ticket.customer_id == customer_id, Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.number)
        )
        return result.scalars().all()

    async def read_ahead_open(self, customer_ids: Iterable[int]) -> None:
        """Load these customers' open tickets at once for the batch (see :class:`ReadAhead`)."""
        read_ahead = ReadAhead.start(self.session)
        wanted = set(customer_ids) - read_ahead.open_tickets.keys()
        if not wanted:
            return
        result = await self.session.execute(
            select(Ticket)
            .where(Ticket.customer_id.in_(wanted), Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.number)
        )
        found: dict[int, list[Ticket]] = {customer: [] for customer in wanted}
        for ticket in result.scalars():
            found[ticket.customer_id].append(ticket)
        read_ahead.open_tickets.update(found)

    async def for_customer(self, customer_id: int, *, limit: int) -> Sequence[Ticket]:
        result = await self.session.execute(
            select(Ticket)
            .where(Ticket.customer_id == customer_id)
            .order_by(Ticket.number.desc())
            .limit(limit)
        )
        return result.scalars().all()

    async def count_for_customer(self, customer_id: int) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(Ticket).where(Ticket.customer_id == customer_id)
        )
        return int(result.scalar_one())

    async def count_attachments(self, number: int) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(Attachment).where(Attachment.ticket_number == number)
        )
        return int(result.scalar_one())

    async def add_attachments(self, attachments: Sequence[Attachment]) -> None:
        self.session.add_all(attachments)
        await self.session.flush()


class ProblemRepo:
    """Problems and their incidents (SPEC §13): the tickets linked to a problem."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, numbers: Iterable[int]) -> dict[int, Ticket]:
        """The tickets, locked on PostgreSQL in the order of their numbers (two links at once
        take them one after the other, and never wait for each other in a circle)."""
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        result = await self.session.execute(
            select(Ticket)
            .where(Ticket.number.in_(wanted))
            .order_by(Ticket.number)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {ticket.number: ticket for ticket in result.scalars().all()}

    async def incident_counts(self, numbers: Iterable[int]) -> dict[int, tuple[int, int]]:
        """For each problem among ``numbers``: how many incidents it has, and how many of them
        are open."""
        wanted = list(set(numbers))
        if not wanted:
            return {}
        result = await self.session.execute(
            select(
                Ticket.problem_number,
                func.count(),
                func.count().filter(Ticket.status != Status.CLOSED.value),
            )
            .where(Ticket.problem_number.in_(wanted))
            .group_by(Ticket.problem_number)
        )
        return {
            int(problem): (int(total), int(open_))
            for problem, total, open_ in result.all()
            if problem is not None
        }

    async def incidents(self, problem: int, *, statuses: Iterable[Status] = ()) -> Sequence[Ticket]:
        """The tickets linked to ``problem`` (those in ``statuses``, when given), by number."""
        query = select(Ticket).where(Ticket.problem_number == problem)
        wanted = [status.value for status in statuses]
        if wanted:
            query = query.where(Ticket.status.in_(wanted))
        result = await self.session.execute(query.order_by(Ticket.number))
        return result.scalars().all()

    async def candidates(self, exclude: int, *, limit: int) -> Sequence[Ticket]:
        """Open tickets a ticket could be linked to, most likely first: problems that have
        incidents already, then tickets of the kind "problem"; the newest first in each."""
        incidents = aliased(Ticket)
        has_incidents = (
            select(incidents.number).where(incidents.problem_number == Ticket.number).exists()
        )
        result = await self.session.execute(
            select(Ticket)
            .where(
                Ticket.number != exclude,
                Ticket.status != Status.CLOSED.value,
                Ticket.problem_number.is_(None),
                or_(has_incidents, Ticket.kind == "problem"),
            )
            .order_by(has_incidents.desc(), Ticket.number.desc())
            .limit(limit)
        )
        return result.scalars().all()


class StaffQueries:
    """What staff look for: the queue and search."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_queue(
        self, *, offset: int, limit: int | None
    ) -> Sequence[tuple[Ticket, User | None]]:
        assignee = aliased(User)
        result = await self.session.execute(
            select(Ticket, assignee)
            .outerjoin(assignee, assignee.id == Ticket.assignee_id)
            .where(Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.priority, Ticket.created_at)
            .offset(offset)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in result.all()]

    async def find(self, query: str, *, limit: int) -> Sequence[Ticket]:
        if not query:
            return []
        text = query.lstrip("#@")
        pattern = f"%{text.lower()}%"
        conditions = [
            func.lower(Ticket.topic).like(pattern),
            func.lower(Ticket.description).like(pattern),
            Ticket.account_number == text,
            Ticket.customer_id.in_(
                select(User.id).where(
                    or_(
                        func.lower(User.username) == text.lower(),
                        func.lower(User.first_name).like(pattern),
                        func.lower(User.last_name).like(pattern),
                    )
                )
            ),
        ]
        number = parse_id(text)  # a 20-digit "number" would overflow the database's integer
        if number is not None:
            conditions.append(Ticket.number == number)
            conditions.append(Ticket.customer_id == number)
        result = await self.session.execute(
            select(Ticket).where(or_(*conditions)).order_by(Ticket.number.desc()).limit(limit)
        )
        return result.scalars().all()


class EventRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def record(
        self,
        ticket_number: int,
        *,
        at: datetime,
        type: str,
        actor_id: int | None,
        actor_role: str,
        old: str | None = None,
        new: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> TicketEvent:
        event = TicketEvent(
            ticket_number=ticket_number, at=at, type=type, actor_id=actor_id, actor_role=actor_role
        )
        # Only what is there: every attribute set on an ORM object fires its events, and a
        # follow-up's event (one per customer message) has neither ``old`` nor ``new``.
        if old is not None:
            event.old = old
        if new is not None:
            event.new = new
        if details is not None:
            event.details = details
        self.session.add(event)
        return event

    async def last_staff_message(self, ticket_number: int) -> int | None:
        """The last staff message copied to the customer (its staff-side id)."""
        result = await self.session.execute(
            select(TicketEvent)
            .where(
                TicketEvent.ticket_number == ticket_number,
                TicketEvent.type.in_(("staff_message", "answer_withdrawn")),
            )
            .order_by(TicketEvent.id.desc())
            .limit(20)
        )
        withdrawn: set[int] = set()  # parts of an album that turned out to be a note
        for event in result.scalars():
            details = event.details or {}
            if event.type == "answer_withdrawn":
                withdrawn.update(int(i) for i in details.get("message_ids") or [])
                continue
            message_id = details.get("message_id")
            if message_id is not None and int(message_id) not in withdrawn:
                return int(message_id)
        return None

    async def for_ticket(self, ticket_number: int) -> Sequence[TicketEvent]:
        result = await self.session.execute(
            select(TicketEvent)
            .where(TicketEvent.ticket_number == ticket_number)
            .order_by(TicketEvent.id)
        )
        return result.scalars().all()

    async def get(self, event_id: int) -> TicketEvent | None:
        return await self.session.get(TicketEvent, event_id)


class LinkRepo:
    GATHERED = "gathered_links"

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    @asynccontextmanager
    async def gathering(cls, session: AsyncSession) -> AsyncIterator[None]:
        """Links added within are written in one statement when it ends: the sender records
        a sweep's sends so, each of which makes a link or a few (an INSERT each was most of
        what recording a send cost). Only where nothing reads or changes the links before the
        end, and no savepoint can roll back part of what was gathered."""
        gathered: list[dict[str, Any]] = []
        session.info[cls.GATHERED] = gathered
        try:
            yield
        finally:
            del session.info[cls.GATHERED]
        await cls(session).add_many(gathered)

    def add(self, link: MessageLink) -> None:
        self.session.add(link)

    async def add_many(self, links: Sequence[dict[str, Any]]) -> None:
        """Several links (columns by name) in one statement: a coalesced relay makes a few
        at once, and the sender records them with every message it sends."""
        if not links:
            return
        gathered: list[dict[str, Any]] | None = self.session.info.get(self.GATHERED)
        if gathered is not None:
            gathered.extend(links)
            return
        # Core, as nothing is read back: one executemany rather than an INSERT per row. A
        # Core statement would flush the session first: the links need nothing of it, and
        # the sender's record of a sweep is then written in one flush, not one per message.
        with self.session.no_autoflush:
            await self.session.execute(insert(cast(Table, MessageLink.__table__)), list(links))

    async def ticket_of_customer_message(self, chat_id: int, message_id: int) -> int | None:
        result = await self.session.execute(
            select(MessageLink.ticket_number)
            .where(
                MessageLink.customer_chat_id == chat_id,
                MessageLink.customer_message_id == message_id,
            )
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def ticket_of_thread(self, chat_id: int, thread_id: int) -> int | None:
        result = await self.session.execute(
            select(Ticket.number)
            .where(Ticket.staff_chat_id == chat_id, Ticket.staff_thread_id == thread_id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def ticket_of_staff_message(self, chat_id: int, message_id: int) -> int | None:
        result = await self.session.execute(
            select(MessageLink.ticket_number)
            .where(MessageLink.staff_chat_id == chat_id, MessageLink.staff_message_id == message_id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def of_staff_message(self, chat_id: int, message_id: int) -> MessageLink | None:
        result = await self.session.execute(
            select(MessageLink)
            .where(MessageLink.staff_chat_id == chat_id, MessageLink.staff_message_id == message_id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def direction_of_staff_message(self, chat_id: int, message_id: int) -> str | None:
        result = await self.session.execute(
            select(MessageLink.direction)
            .where(MessageLink.staff_chat_id == chat_id, MessageLink.staff_message_id == message_id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def customer_message_of_staff(self, chat_id: int, message_id: int) -> int | None:
        """The customer-side message a staff-side message stands for (a relayed copy)."""
        result = await self.session.execute(
            select(MessageLink.customer_message_id)
            .where(MessageLink.staff_chat_id == chat_id, MessageLink.staff_message_id == message_id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def staff_message_of_customer(self, chat_id: int, message_id: int) -> int | None:
        result = await self.session.execute(
            select(MessageLink.staff_message_id)
            .where(
                MessageLink.customer_chat_id == chat_id,
                MessageLink.customer_message_id == message_id,
                MessageLink.staff_message_id.is_not(None),
            )
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def for_ticket(self, ticket_number: int) -> Sequence[MessageLink]:
        result = await self.session.execute(
            select(MessageLink)
            .where(MessageLink.ticket_number == ticket_number)
            .order_by(MessageLink.id)
        )
        return result.scalars().all()


# Calls that post several messages: their payload says how many (sender.messages_in).
MULTI_MESSAGE_METHODS = ("SendMediaGroup", "CopyMessages", "ForwardMessages")


@functools.cache
def _due_heads_statement() -> Select[tuple[Any, ...]]:
    """The sender's sweep, built once (on first use): an aliased entity costs more to build
    than the query takes to run, and the sender sweeps many times a second in a burst.
    Bound: ``now``, ``dead_before``, ``limit``."""
    now = bindparam("now", type_=Delivery.not_before.type)
    dead_before = bindparam("dead_before", type_=SenderInstance.heartbeat_at.type)
    earlier = aliased(Delivery)
    blocked = exists().where(
        and_(
            earlier.stream == Delivery.stream,
            earlier.status == "pending",
            earlier.id < Delivery.id,
        )
    )
    # Plain columns rather than ORM objects, and a call's payload only where it says how many
    # messages the call posts.
    counted = case((Delivery.method.in_(MULTI_MESSAGE_METHODS), Delivery.payload), else_=null())
    return (
        select(
            Delivery.id,
            Delivery.chat_id,
            Delivery.stream,
            Delivery.rank,
            Delivery.method,
            Delivery.ticket_number,
            Delivery.context,
            counted,
        )
        .where(
            Delivery.status == "pending",
            Delivery.not_before <= now,
            DeliveryRepo._free(now, dead_before),
            ~blocked,
        )
        .order_by(Delivery.rank, Delivery.id)
        .limit(bindparam("limit", type_=Integer()))
    )


@functools.cache
def _mark_sent_statement() -> Update:
    table = cast(Table, Delivery.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("sent_id"))
        .values(
            status="sent",
            sent_at=bindparam("sent_now"),
            error=None,
            result=bindparam("sent_result"),
        )
    )


@functools.cache
def _dialog_ranges_statement(size: int) -> Select[DialogState]:
    """The dialog rows within ``size`` key ranges (``from_N`` <= key < ``to_N``)."""
    return select(DialogState).where(
        or_(
            *(
                and_(
                    DialogState.key >= bindparam(f"from_{n}"),
                    DialogState.key < bindparam(f"to_{n}"),
                )
                for n in range(size)
            )
        )
    )


@functools.cache
def _followers_statement() -> Select[Delivery]:
    """What waits behind the heads of a sweep, at most ``limit`` per stream, in order; built
    once (see _due_heads_statement). Bound: ``streams``, ``heads`` (their ids), ``limit``."""
    queued = (
        select(
            Delivery.id,
            func.row_number()
            .over(partition_by=Delivery.stream, order_by=Delivery.id)
            .label("place"),
        )
        .where(
            Delivery.stream.in_(bindparam("streams", expanding=True)),
            Delivery.status == "pending",
            Delivery.id.not_in(bindparam("heads", expanding=True)),
        )
        .subquery()
    )
    within = select(queued.c.id).where(queued.c.place <= bindparam("limit", type_=Integer()))
    # The rows themselves by id: PostgreSQL locks no rows of a query with a window function.
    return (
        select(Delivery)
        .where(Delivery.id.in_(within))
        .order_by(Delivery.stream, Delivery.id)
        .with_for_update()
    )


@dataclass(frozen=True, slots=True)
class DueHead:
    """A delivery due to go, as the sender weighs it (:meth:`DeliveryRepo.due_heads`): where
    it goes, how urgent, whose; ``payload`` only for calls that post several messages."""

    id: int
    chat_id: int
    stream: str
    rank: int
    method: str
    ticket_number: int | None
    context: dict[str, Any] | None
    payload: dict[str, Any]


class DeliveryRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def copies_of(self, chat_id: int, staff_message_id: Any) -> Sequence[Delivery]:
        """The latest copies of a staff message to a chat, newest first (looked through in
        Python: JSON queries differ between SQLite and PostgreSQL, and there are few)."""
        rows = await self.session.scalars(
            select(Delivery)
            .where(Delivery.chat_id == chat_id, Delivery.method == "CopyMessage")
            .order_by(Delivery.id.desc())
            .limit(200)
        )
        return [row for row in rows if row.payload.get("message_id") == staff_message_id]

    def add(self, delivery: Delivery) -> None:
        self.session.add(delivery)
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is not None:
            read_ahead.last_pending[delivery.stream] = delivery

    @staticmethod
    def _free(
        now: datetime | ColumnElement[datetime], dead_before: datetime | ColumnElement[datetime]
    ) -> ColumnElement[bool]:
        """Not leased, or leased by a sender that expired or stopped beating."""
        dead = select(SenderInstance.id).where(SenderInstance.heartbeat_at < dead_before)
        return or_(
            Delivery.claimed_until.is_(None),
            Delivery.claimed_until < now,
            Delivery.claimed_by.in_(dead),
        )

    async def due_heads(
        self, now: datetime, *, limit: int, dead_before: datetime | None = None
    ) -> Sequence[DueHead]:
        """The first unsent delivery of every stream that may go now, most urgent first: what
        the sender weighs them by, not their calls (it reads those of the few it takes)."""
        result = await self.session.execute(
            _due_heads_statement(),
            {"now": now, "dead_before": dead_before or now, "limit": limit},
        )
        return [
            DueHead(id, chat, stream, rank, method, number, context, payload or {})
            for id, chat, stream, rank, method, number, context, payload in result.all()
        ]

    async def due_now(self, chat_id: int, now: datetime) -> None:
        """The pending deliveries to ``chat_id`` may go at once (a group took the bot back)."""
        await self.session.execute(
            update(Delivery)
            .where(Delivery.chat_id == chat_id, Delivery.status == "pending")
            .values(not_before=now)
        )

    async def next_due_at(self) -> datetime | None:
        result = await self.session.execute(
            select(func.min(Delivery.not_before)).where(Delivery.status == "pending")
        )
        return result.scalar_one_or_none()

    async def claim(
        self,
        delivery_id: int,
        *,
        now: datetime,
        until: datetime,
        owner: str,
        dead_before: datetime | None = None,
    ) -> bool:
        """Take a lease on a delivery; only one sender (of any process) gets it."""
        result = await self.session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status == "pending",
                self._free(now, dead_before or now),
            )
            .values(claimed_until=until, claimed_by=owner, attempts=Delivery.attempts + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def claim_many(
        self,
        ids: Sequence[int],
        *,
        now: datetime,
        until: datetime,
        owner: str,
        dead_before: datetime | None = None,
    ) -> dict[int, Delivery]:
        """Lease several deliveries at once; returns those this sender got, by id, as they
        are once leased (another sender's lease, or a row sent meanwhile, is not among them).
        One statement: the lease and the read of what it took."""
        result = await self.session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(ids),
                Delivery.status == "pending",
                self._free(now, dead_before or now),
            )
            .values(claimed_until=until, claimed_by=owner, attempts=Delivery.attempts + 1)
            .returning(Delivery)
            .execution_options(synchronize_session=False)
        )
        return {row.id: row for row in result.scalars()}

    async def get(self, delivery_id: int) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def get_many(self, ids: Sequence[int]) -> dict[int, Delivery]:
        result = await self.session.execute(select(Delivery).where(Delivery.id.in_(ids)))
        return {row.id: row for row in result.scalars()}

    async def mark_sent(self, sent: Sequence[tuple[int, list[int]]], now: datetime) -> None:
        """Deliveries sent (each id with the messages it made), in one statement. Core, as
        nothing is read back: the sender holds what it claimed, and loading a row into the
        session only to change three fields is most of what recording a send costs."""
        if not sent:
            return
        await self.session.execute(
            _mark_sent_statement(),
            [
                {"sent_id": delivery_id, "sent_now": now, "sent_result": {"message_ids": ids}}
                for delivery_id, ids in sent
            ],
        )

    async def forget_sent_before(self, moment: datetime) -> None:
        await self.session.execute(
            delete(Delivery).where(Delivery.status == "sent", Delivery.sent_at < moment)
        )

    async def in_flight(self, chat_id: int, *, now: datetime, leased_until_by: datetime) -> bool:
        """Whether a send to ``chat_id`` is on its way — leased by a sender, its outcome not
        recorded yet — whose lease ends by ``leased_until_by`` (it was leased early enough)."""
        result = await self.session.execute(
            select(Delivery.id)
            .where(
                Delivery.status == "pending",
                Delivery.chat_id == chat_id,
                Delivery.claimed_until > now,
                Delivery.claimed_until <= leased_until_by,
            )
            .limit(1)
        )
        return result.first() is not None

    async def streams_waiting_in_groups(self) -> dict[int, int]:
        """How many streams (tickets) have deliveries waiting, per group (negative chat ids):
        the sender's measure of a group's queue against its budget. Streams, not messages: what
        waits in one stream leaves joined, a message or two however many there are."""
        result = await self.session.execute(
            select(Delivery.chat_id, func.count(func.distinct(Delivery.stream)))
            .where(Delivery.status == "pending", Delivery.chat_id < 0)
            .group_by(Delivery.chat_id)
        )
        return {int(chat): int(count) for chat, count in result.all()}

    async def followers(
        self, heads: Sequence[Delivery], now: datetime, *, limit: int
    ) -> dict[int, list[Delivery]]:
        """For each head (the first of its stream, leased), by its id, the deliveries queued
        right behind it that may leave with it: at most ``limit``, up to the first one that
        may not go now (not due yet, like an album still taking in parts, or touched by a
        sender), so nothing overtakes it. Locked (on PostgreSQL) until the caller commits, so
        nothing joins them meanwhile. One query for all the heads of a sweep."""
        if not heads:
            return {}
        by_stream = {head.stream: head for head in heads}
        result = await self.session.execute(
            _followers_statement(),
            {"streams": list(by_stream), "heads": [head.id for head in heads], "limit": limit},
        )
        ready: dict[int, list[Delivery]] = {}
        stopped: set[str] = set()
        for row in result.scalars():
            head = by_stream[row.stream]
            if row.stream in stopped or row.id < head.id:
                continue
            if row.claimed_until is not None or row.attempts or row.not_before > now:
                stopped.add(row.stream)
                continue
            ready.setdefault(head.id, []).append(row)
        return ready

    @staticmethod
    def merged(rows: Sequence[Delivery], into: int, now: datetime) -> None:
        """Deliveries (read, locked, in this session) that left as part of delivery ``into``
        (coalesced): done, never sent on their own. Written with the rest at the flush: the
        rows of a whole sweep in one statement."""
        for row in rows:
            if row.status == "pending":
                row.status, row.sent_at, row.result = "merged", now, {"merged_into": into}

    async def unseen_for_chat(
        self, chat_id: int, *, purposes: Sequence[str], limit: int = 2000
    ) -> Sequence[Delivery]:
        """Deliveries of ``purposes`` waiting for ``chat_id`` that no sender has touched yet,
        oldest first (what a burst digest sums up)."""
        result = await self.session.execute(
            select(Delivery)
            .where(
                Delivery.chat_id == chat_id,
                Delivery.status == "pending",
                Delivery.purpose.in_(purposes),
                Delivery.claimed_until.is_(None),
            )
            .order_by(Delivery.id)
            .limit(limit)
            # Locked (PostgreSQL) while the digest marks them: an album taking in a part
            # meanwhile waits, and another process's digest passes them by.
            .with_for_update(skip_locked=True)
        )
        return result.scalars().all()

    async def unclaimed_in_stream(self, stream: str) -> Sequence[Delivery]:
        """The stream's pending deliveries no sender has touched yet, in order, locked (on
        PostgreSQL) until the caller commits."""
        result = await self.session.execute(
            select(Delivery)
            .where(
                Delivery.stream == stream,
                Delivery.status == "pending",
                Delivery.claimed_until.is_(None),
                Delivery.attempts == 0,
            )
            .order_by(Delivery.id)
            .with_for_update()
        )
        return result.scalars().all()

    async def last_unclaimed(self, stream: str) -> Delivery | None:
        """The stream's last pending delivery if no sender has touched it yet, locked (on
        PostgreSQL) until the caller commits, so a message can join it and none is lost: a
        sender's claim waits for the lock, and reads what was joined."""
        read_ahead = ReadAhead.of(self.session)
        last = read_ahead.last_pending.get(stream) if read_ahead is not None else None
        if last is None:
            # (Known in a batch, it is not read again: that read would first flush what the
            # batch wrote so far, message by message, where the batch's commit writes it all
            # at once.)
            result = await self.session.execute(
                select(Delivery)
                .where(Delivery.stream == stream, Delivery.status == "pending")
                .order_by(Delivery.id.desc())
                .limit(1)
                .with_for_update()
            )
            last = result.scalar_one_or_none()
            if read_ahead is not None and last is not None:
                read_ahead.last_pending[stream] = last
        if last is None or last.claimed_until is not None or last.attempts:
            return None
        return last

    async def pending_album(self, stream: str, media_group_id: str) -> Delivery | None:
        """An album relay not yet claimed, so a further album part can join it."""
        # Album deliveries wait ALBUM_GRACE before they are due, so this is a short list.
        result = await self.session.execute(
            select(Delivery)
            .where(
                Delivery.stream == stream,
                Delivery.status == "pending",
                Delivery.claimed_until.is_(None),
                Delivery.attempts == 0,
                Delivery.purpose.in_(("relay", "answer")),
                Delivery.method == "SendMediaGroup",
            )
            .order_by(Delivery.id.desc())
            # Locked until the part joins (PostgreSQL): a sender's claim waits, then sends it.
            .with_for_update()
        )
        for delivery in result.scalars():
            if (delivery.context or {}).get("media_group_id") == media_group_id:
                return delivery
        return None


class SenderRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def beat(self, instance_id: str, now: datetime) -> None:
        row = await self.session.get(SenderInstance, instance_id)
        if row is None:
            self.session.add(SenderInstance(id=instance_id, started_at=now, heartbeat_at=now))
        else:
            row.heartbeat_at = now

    async def forget(self, instance_id: str) -> None:
        await self.session.execute(delete(SenderInstance).where(SenderInstance.id == instance_id))

    async def count_alive(self, since: datetime) -> int:
        """Senders that beat since ``since`` (this one included once it has beaten)."""
        count = await self.session.scalar(
            select(func.count())
            .select_from(SenderInstance)
            .where(SenderInstance.heartbeat_at >= since)
        )
        return int(count or 0)

    async def forget_dead(self, before: datetime) -> None:
        """Drop long-dead instances, once none of their leases can matter any more."""
        await self.session.execute(
            delete(SenderInstance).where(SenderInstance.heartbeat_at < before)
        )


class ChatOwners:
    """Which sender sends to which chat (``ChatOwner``): taken when free or expired, kept
    while held, given back when the holder is done with it."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(
        self, chat_ids: Iterable[int], owner: str, now: datetime, until: datetime
    ) -> set[int]:
        """Hold ``chat_ids`` until ``until``: those free, expired or held by ``owner``
        already; returns the ones now held."""
        rows = [{"chat_id": chat_id, "owner": owner, "until": until} for chat_id in chat_ids]
        if not rows:
            return set()
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        upsert = (pg_insert if postgresql else sqlite_insert)(ChatOwner).values(rows)
        statement = upsert.on_conflict_do_update(
            index_elements=[ChatOwner.chat_id],
            set_={"owner": upsert.excluded.owner, "until": upsert.excluded.until},
            where=or_(ChatOwner.owner == owner, ChatOwner.until < now),
        ).returning(ChatOwner.chat_id)
        return {int(chat_id) for chat_id in (await self.session.execute(statement)).scalars()}

    async def extend(self, owner: str, until: dict[int, datetime]) -> None:
        """Keep holding these chats, each until its own time."""
        for chat_id, moment in until.items():
            await self.session.execute(
                update(ChatOwner)
                .where(ChatOwner.chat_id == chat_id, ChatOwner.owner == owner)
                .values(until=moment)
            )

    async def release(self, owner: str, chat_ids: Iterable[int]) -> None:
        wanted = list(chat_ids)
        if wanted:
            await self.session.execute(
                delete(ChatOwner).where(ChatOwner.owner == owner, ChatOwner.chat_id.in_(wanted))
            )

    async def forget_before(self, moment: datetime) -> None:
        await self.session.execute(delete(ChatOwner).where(ChatOwner.until < moment))

    async def hand_over(
        self, owner: str, memories: dict[int, dict[str, Any]], now: datetime
    ) -> None:
        """Let these chats go now, leaving what this sender's limits remember of each."""
        for chat_id, memory in memories.items():
            await self.session.execute(
                update(ChatOwner)
                .where(ChatOwner.chat_id == chat_id, ChatOwner.owner == owner)
                .values(until=now, memory={**memory, "at": now.isoformat()})
            )

    async def take_memories(self, chat_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """What former holders left of these chats (just acquired: locked by this
        transaction), taken once: a later holder does not count it again."""
        wanted = list(chat_ids)
        if not wanted:
            return {}
        rows = (
            await self.session.execute(
                select(ChatOwner.chat_id, ChatOwner.memory).where(
                    ChatOwner.chat_id.in_(wanted), ChatOwner.memory.is_not(None)
                )
            )
        ).all()
        if rows:
            await self.session.execute(
                update(ChatOwner)
                .where(ChatOwner.chat_id.in_([chat_id for chat_id, _ in rows]))
                .values(memory=null())
            )
        return {int(chat_id): memory for chat_id, memory in rows if memory}


class DeskSettings:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> str | None:
        row = await self.session.get(DeskSetting, key)
        return row.value if row is not None else None

    async def put(self, key: str, value: str) -> None:
        row = await self.session.get(DeskSetting, key)
        if row is None:
            self.session.add(DeskSetting(key=key, value=value))
        else:
            row.value = value


class MacroRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> Sequence[Macro]:
        result = await self.session.execute(select(Macro).order_by(Macro.title))
        return result.scalars().all()

    async def get(self, macro_id: int) -> Macro | None:
        return await self.session.get(Macro, macro_id)

    async def by_title(self, title: str) -> Macro | None:
        result = await self.session.execute(
            select(Macro).where(func.lower(Macro.title) == title.lower())
        )
        return result.scalar_one_or_none()

    def add(self, macro: Macro) -> None:
        self.session.add(macro)

    async def delete(self, macro: Macro) -> None:
        await self.session.delete(macro)


class DialogRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> DialogState | None:
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is not None and read_ahead.dialog_prefix_of(key) is not None:
            return read_ahead.dialogs.get(key)
        return await self.session.get(DialogState, key)

    async def read_ahead(self, prefixes: Iterable[str]) -> None:
        """Load every row under these key prefixes (each ending in ``:``) at once for the
        batch (see :class:`ReadAhead`)."""
        read_ahead = ReadAhead.start(self.session)
        wanted = set(prefixes) - read_ahead.dialog_prefixes
        if not wanted:
            return
        # A range per prefix, on the primary key: ``;`` is the character after ``:``. As many
        # ranges as the next power of two (the last one repeated): a handful of statements,
        # each built and compiled once, rather than a new one for every batch.
        prefixes = sorted(wanted)
        size = 1 << (len(prefixes) - 1).bit_length()
        prefixes += prefixes[-1:] * (size - len(prefixes))
        params = {f"from_{n}": prefix for n, prefix in enumerate(prefixes)}
        params |= {f"to_{n}": prefix[:-1] + ";" for n, prefix in enumerate(prefixes)}
        result = await self.session.execute(_dialog_ranges_statement(size), params)
        read_ahead.dialog_prefixes |= wanted
        read_ahead.dialogs.update({row.key: row for row in result.scalars()})

    async def put(
        self, key: str, *, state: str | None, data: dict[str, Any], now: datetime
    ) -> None:
        row = await self.get(key)
        read_ahead = ReadAhead.of(self.session)
        cached = read_ahead is not None and read_ahead.dialog_prefix_of(key) is not None
        if state is None and not data:
            if row is not None:
                await self.session.delete(row)
                if cached:
                    assert read_ahead is not None
                    read_ahead.dialogs[key] = None
            return
        if row is None:
            row = DialogState(key=key, state=state, data=data, updated_at=now)
            self.session.add(row)
            if cached:
                assert read_ahead is not None
                read_ahead.dialogs[key] = row
        else:
            row.state, row.data, row.updated_at = state, data, now

    async def forget_before(self, prefix: str, moment: datetime) -> None:
        """Drop the rows under ``prefix`` last written before ``moment``."""
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is not None:  # rows may go behind its back: it reads as it goes again
            read_ahead.dialog_prefixes.clear()
            read_ahead.dialogs.clear()
        await self.session.execute(
            delete(DialogState).where(
                DialogState.key.startswith(prefix, autoescape=True),
                DialogState.updated_at < moment,
            )
        )


class UpdatesTakenError(Exception):
    """Updates of a batch were marked handled by someone else while the batch ran."""

    def __init__(self, update_ids: Sequence[int]) -> None:
        super().__init__(f"updates handled elsewhere meanwhile: {list(update_ids)}")


class UpdateLog:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        return pg_insert(ProcessedUpdate) if postgresql else sqlite_insert(ProcessedUpdate)

    async def first_time(self, update_id: int, now: datetime) -> bool:
        """Mark the update as handled; False when it already was (a redelivery). In a batch
        that read ahead, the mark is written with the others at its end (``mark_read_ahead``)."""
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is not None and update_id in read_ahead.update_ids:
            if update_id in read_ahead.handled:
                return False
            read_ahead.handled.add(update_id)
            read_ahead.to_mark[update_id] = now
            return True
        values = {"update_id": update_id, "at": now}
        result = await self.session.execute(self._insert().values(values).on_conflict_do_nothing())
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def read_ahead(self, update_ids: Iterable[int]) -> None:
        """Which of these updates were handled already, in one look for the batch."""
        read_ahead = ReadAhead.start(self.session)
        wanted = set(update_ids) - read_ahead.update_ids
        if not wanted:
            return
        result = await self.session.execute(
            select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id.in_(wanted))
        )
        read_ahead.update_ids |= wanted
        read_ahead.handled.update(result.scalars())

    async def mark_read_ahead(self) -> None:
        """Write the marks of the updates the batch took, in one statement. Another process
        that marked one of them meanwhile (PostgreSQL; SQLite's write lock rules it out) makes
        it fail, and the batch is rolled back: its updates are then handled one at a time."""
        read_ahead = ReadAhead.of(self.session)
        if read_ahead is None or not read_ahead.to_mark:
            return
        rows = [{"update_id": i, "at": at} for i, at in read_ahead.to_mark.items()]
        # Parameter sets, not a VALUES list: one statement still ("insertmanyvalues"), but
        # compiled once, where a list of a hundred rows is a new statement each batch.
        result = await self.session.execute(
            self._insert().on_conflict_do_nothing().returning(ProcessedUpdate.update_id), rows
        )
        marked = set(result.scalars())
        if marked != read_ahead.to_mark.keys():
            raise UpdatesTakenError(sorted(read_ahead.to_mark.keys() - marked))
        read_ahead.to_mark.clear()

    async def forget_before(self, moment: datetime) -> None:
        # Not the ids of failed updates: a replay of one must still find it already applied.
        await self.session.execute(
            delete(ProcessedUpdate).where(
                ProcessedUpdate.at < moment,
                ProcessedUpdate.update_id.not_in(select(FailedUpdate.update_id)),
            )
        )


class FailedUpdates:
    """Updates kept after every attempt to handle them failed (``bot/failures.py``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def keep(
        self,
        *,
        update_id: int,
        event_type: str,
        chat_id: int | None,
        user_id: int | None,
        payload: dict[str, Any],
        error: str,
        traceback: str,
        attempts: int,
        now: datetime,
    ) -> FailedUpdate:
        """One row per update: a later failure of the same update (a replay, a redelivery)
        adds its attempts, replaces the error and puts the row back to ``pending``."""
        row = await self.by_update_id(update_id)
        if row is None:
            row = FailedUpdate(
                update_id=update_id,
                event_type=event_type,
                chat_id=chat_id,
                user_id=user_id,
                payload=payload,
                error=error,
                traceback=traceback,
                attempts=attempts,
                first_failed_at=now,
                last_failed_at=now,
                status="pending",
            )
            self.session.add(row)
        else:
            row.error, row.traceback, row.last_failed_at = error, traceback, now
            row.attempts += attempts
            row.status, row.resolved_at, row.resolution = "pending", None, None
        await self.session.flush()
        return row

    async def get(self, row_id: int) -> FailedUpdate | None:
        return await self.session.get(FailedUpdate, row_id)

    async def by_update_id(self, update_id: int) -> FailedUpdate | None:
        return await self.session.scalar(
            select(FailedUpdate).where(FailedUpdate.update_id == update_id)
        )

    async def listing(
        self, statuses: Sequence[str] | None = None, *, limit: int = 200
    ) -> Sequence[FailedUpdate]:
        query = select(FailedUpdate).order_by(FailedUpdate.id).limit(limit)
        if statuses is not None:
            query = query.where(FailedUpdate.status.in_(statuses))
        return (await self.session.scalars(query)).all()

    async def request_retry(self, ids: Sequence[int] | None, now: datetime) -> list[int]:
        """``pending`` → ``retried`` (all pending ones without ``ids``): the running bot
        replays them. The ids actually marked."""
        query = select(FailedUpdate.id).where(FailedUpdate.status == "pending")
        if ids is not None:
            query = query.where(FailedUpdate.id.in_(ids))
        marked = list((await self.session.scalars(query.order_by(FailedUpdate.id))).all())
        if marked:
            await self.session.execute(
                update(FailedUpdate)
                .where(FailedUpdate.id.in_(marked), FailedUpdate.status == "pending")
                .values(status="retried", retry_requested_at=now)
            )
        return marked

    async def due_for_replay(self, limit: int = 50) -> Sequence[FailedUpdate]:
        query = (
            select(FailedUpdate)
            .where(FailedUpdate.status == "retried")
            .order_by(FailedUpdate.id)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def resolve(
        self,
        now: datetime,
        resolution: str,
        *,
        row_id: int | None = None,
        update_id: int | None = None,
    ) -> bool:
        """Mark a row (by id or by update id) resolved; False when there was none to mark."""
        if row_id is None and update_id is None:
            raise ValueError("which row? pass row_id or update_id")
        query = update(FailedUpdate).where(FailedUpdate.status != "resolved")
        if row_id is not None:
            query = query.where(FailedUpdate.id == row_id)
        if update_id is not None:
            query = query.where(FailedUpdate.update_id == update_id)
        result = await self.session.execute(
            query.values(status="resolved", resolved_at=now, resolution=resolution)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def back_to_pending(self, row_id: int) -> None:
        """A replay that could not even be kept as failed again: not retried in a loop."""
        await self.session.execute(
            update(FailedUpdate)
            .where(FailedUpdate.id == row_id, FailedUpdate.status == "retried")
            .values(status="pending")
        )


class MailRepo:
    """The mails of each ticket's thread, both ways, and what became of every incoming one
    (SPEC §10): a mail is recorded once, under its Message-ID."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known(self, message_id: str) -> bool:
        return await self.session.get(MailMessage, message_id) is not None

    def record(
        self,
        message_id: str,
        *,
        ticket_number: int | None,
        direction: str,
        outcome: str,
        at: datetime,
    ) -> None:
        self.session.add(
            MailMessage(
                message_id=message_id,
                ticket_number=ticket_number,
                direction=direction,
                outcome=outcome,
                created_at=at,
            )
        )

    async def tickets_of(self, message_ids: Sequence[str]) -> dict[str, int]:
        """The tickets these mails belong to (those the desk knows of)."""
        if not message_ids:
            return {}
        rows = await self.session.execute(
            select(MailMessage.message_id, MailMessage.ticket_number).where(
                MailMessage.message_id.in_(list(message_ids)),
                MailMessage.ticket_number.is_not(None),
            )
        )
        return {message_id: number for message_id, number in rows.tuples() if number is not None}

    async def thread(self, ticket_number: int) -> list[tuple[str, str]]:
        """The ticket's mails so far, oldest first: (Message-ID, direction)."""
        rows = await self.session.execute(
            select(MailMessage.message_id, MailMessage.direction)
            .where(MailMessage.ticket_number == ticket_number)
            .order_by(MailMessage.created_at, MailMessage.message_id)
        )
        return [(message_id, direction) for message_id, direction in rows.tuples()]


class AccountRepo:
    """Customer accounts and their organisations (SPEC §12)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lookup(self, number: str) -> tuple[Account, Organisation] | None:
        row = (
            await self.session.execute(
                select(Account, Organisation)
                .join(Organisation, Organisation.id == Account.organisation_id)
                .where(Account.number == number)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def organisations(self, names: Iterable[str]) -> dict[str, Organisation]:
        wanted = sorted(set(names))
        found: dict[str, Organisation] = {}
        for start in range(0, len(wanted), 500):  # within every database's parameter limit
            rows = await self.session.scalars(
                select(Organisation).where(Organisation.name.in_(wanted[start : start + 500]))
            )
            found.update((o.name, o) for o in rows)
        return found

    async def accounts(self, numbers: Iterable[str]) -> dict[str, Account]:
        wanted = sorted(set(numbers))
        found: dict[str, Account] = {}
        for start in range(0, len(wanted), 500):
            rows = await self.session.scalars(
                select(Account).where(Account.number.in_(wanted[start : start + 500]))
            )
            found.update((a.number, a) for a in rows)
        return found

    def add_organisation(self, name: str, tariff: str, at: datetime) -> Organisation:
        organisation = Organisation(name=name, tariff=tariff, created_at=at, updated_at=at)
        self.session.add(organisation)
        return organisation

    def add_account(self, number: str, organisation: Organisation, at: datetime) -> Account:
        account = Account(
            number=number, organisation_id=organisation.id, created_at=at, updated_at=at
        )
        self.session.add(account)
        return account

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(Account)) or 0)
