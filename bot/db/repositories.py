"""Queries of the desk, one small class per aggregate. They take a session and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from bot.db.models import (
    Attachment,
    Delivery,
    DeskSetting,
    DialogState,
    FailedUpdate,
    Macro,
    MessageLink,
    ProcessedUpdate,
    SenderInstance,
    Ticket,
    TicketEvent,
    User,
)
from bot.domain.ids import parse_id
from bot.domain.tickets import OPEN_STATUSES, Status


class UserRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

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
        user = await self.session.get(User, user_id)
        if user is None:
            user = User(
                id=user_id,
                first_name=first_name,
                last_name=last_name,
                username=username,
                language_code=language_code,
                created_at=now,
                updated_at=now,
            )
            self.session.add(user)
            await self.session.flush()
            return user
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

    async def by_intake_key(self, key: str) -> Ticket | None:
        result = await self.session.execute(select(Ticket).where(Ticket.intake_key == key))
        return result.scalar_one_or_none()

    async def first_created_at(self) -> datetime | None:
        """When the oldest ticket was opened (answered from the index on created_at)."""
        return await self.session.scalar(select(func.min(Ticket.created_at)))

    async def add(self, ticket: Ticket) -> Ticket:
        self.session.add(ticket)
        await self.session.flush()
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
        result = await self.session.execute(
            select(Ticket)
            .where(Ticket.customer_id == customer_id, Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.number)
        )
        return result.scalars().all()

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


class StaffQueries:
    """What staff look for: the queue and search."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count_open(self) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(Ticket).where(Ticket.status.in_(OPEN_STATUSES))
        )
        return int(result.scalar_one())

    async def open_queue(self, *, offset: int, limit: int) -> Sequence[tuple[Ticket, User | None]]:
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
            ticket_number=ticket_number,
            at=at,
            type=type,
            actor_id=actor_id,
            actor_role=actor_role,
            old=old,
            new=new,
            details=details,
        )
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
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, link: MessageLink) -> None:
        self.session.add(link)

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


class DeliveryRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, delivery: Delivery) -> None:
        self.session.add(delivery)

    @staticmethod
    def _free(now: datetime, dead_before: datetime) -> ColumnElement[bool]:
        """Not leased, or leased by a sender that expired or stopped beating."""
        dead = select(SenderInstance.id).where(SenderInstance.heartbeat_at < dead_before)
        return or_(
            Delivery.claimed_until.is_(None),
            Delivery.claimed_until < now,
            Delivery.claimed_by.in_(dead),
        )

    async def due_heads(
        self, now: datetime, *, limit: int, dead_before: datetime | None = None
    ) -> Sequence[Delivery]:
        """The first unsent delivery of every stream that may go now, most urgent first."""
        earlier = aliased(Delivery)
        blocked = exists().where(
            and_(
                earlier.stream == Delivery.stream,
                earlier.status == "pending",
                earlier.id < Delivery.id,
            )
        )
        result = await self.session.execute(
            select(Delivery)
            .where(
                Delivery.status == "pending",
                Delivery.not_before <= now,
                self._free(now, dead_before or now),
                ~blocked,
            )
            .order_by(Delivery.rank, Delivery.id)
            .limit(limit)
        )
        return result.scalars().all()

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
    ) -> set[int]:
        """Lease several deliveries at once; returns the ids this sender got."""
        await self.session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(ids),
                Delivery.status == "pending",
                self._free(now, dead_before or now),
            )
            .values(claimed_until=until, claimed_by=owner, attempts=Delivery.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(
            select(Delivery.id).where(
                Delivery.id.in_(ids),
                Delivery.claimed_by == owner,
                Delivery.claimed_until == until,
            )
        )
        return set(result.scalars())

    async def get(self, delivery_id: int) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def get_many(self, ids: Sequence[int]) -> dict[int, Delivery]:
        result = await self.session.execute(select(Delivery).where(Delivery.id.in_(ids)))
        return {row.id: row for row in result.scalars()}

    async def forget_sent_before(self, moment: datetime) -> None:
        await self.session.execute(
            delete(Delivery).where(Delivery.status == "sent", Delivery.sent_at < moment)
        )

    async def last_unclaimed(self, stream: str) -> Delivery | None:
        """The stream's last pending delivery if no sender has touched it yet, locked (on
        PostgreSQL) until the caller commits, so a message can join it and none is lost: a
        sender's claim waits for the lock, and reads what was joined."""
        result = await self.session.execute(
            select(Delivery)
            .where(Delivery.stream == stream, Delivery.status == "pending")
            .order_by(Delivery.id.desc())
            .limit(1)
            .with_for_update()
        )
        last = result.scalar_one_or_none()
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

    async def forget_dead(self, before: datetime) -> None:
        """Drop long-dead instances, once none of their leases can matter any more."""
        await self.session.execute(
            delete(SenderInstance).where(SenderInstance.heartbeat_at < before)
        )


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
        return await self.session.get(DialogState, key)

    async def put(
        self, key: str, *, state: str | None, data: dict[str, Any], now: datetime
    ) -> None:
        row = await self.session.get(DialogState, key)
        if state is None and not data:
            if row is not None:
                await self.session.delete(row)
            return
        if row is None:
            self.session.add(DialogState(key=key, state=state, data=data, updated_at=now))
        else:
            row.state, row.data, row.updated_at = state, data, now

    async def forget_before(self, prefix: str, moment: datetime) -> None:
        """Drop the rows under ``prefix`` last written before ``moment``."""
        await self.session.execute(
            delete(DialogState).where(
                DialogState.key.startswith(prefix, autoescape=True),
                DialogState.updated_at < moment,
            )
        )


class UpdateLog:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first_time(self, update_id: int, now: datetime) -> bool:
        """Mark the update as handled; False when it already was (a redelivery)."""
        values = {"update_id": update_id, "at": now}
        statement = (
            pg_insert(ProcessedUpdate).values(values).on_conflict_do_nothing()
            if self.session.get_bind().dialect.name == "postgresql"
            else sqlite_insert(ProcessedUpdate).values(values).on_conflict_do_nothing()
        )
        result = await self.session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

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
