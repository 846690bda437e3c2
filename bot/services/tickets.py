"""Customer-side use cases: register a request, add a follow-up to it, list requests."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aiogram import methods
from aiogram.types import Message
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Attachment, Ticket, User
from bot.db.repositories import DeliveryRepo, EventRepo, LinkRepo, TicketRepo
from bot.domain.tickets import Action, Kind, Status, default_priority, is_open
from bot.services.albums import merge_album
from bot.services.cards import Cards
from bot.services.copies import edit_copy
from bot.services.delivery import ALBUM_GRACE, Outbox, stream_of, to_customer
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import apply
from bot.views import tickets as views

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttachmentIn:
    """A file the customer sent; kept as Telegram ``file_id`` (SPEC §3)."""

    kind: str  # photo / document / video / audio
    file_id: str
    file_unique_id: str
    file_name: str | None = None
    mime_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttachmentIn:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Draft:
    key: str
    kind: Kind
    topic: str
    description: str
    account_number: str
    attachments: Sequence[AttachmentIn] = ()


@dataclass(frozen=True, slots=True)
class RelayItem:
    """One customer message to relay; ``media`` is its InputMedia when it is part of an album."""

    message_id: int
    media: dict[str, Any] | None = None
    attachment: AttachmentIn | None = None


@dataclass(slots=True)
class Registration:
    ticket: Ticket
    created: bool


@dataclass(slots=True)
class RelayResult:
    ticket: Ticket
    reopened_from_waiting: bool = False
    after_hours_notice: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class TicketService:
    def __init__(
        self, *, clock: Clock, outbox: Outbox, i18n: I18n, config: DeskConfig, cards: Cards
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.i18n = i18n
        self.config = config
        self.cards = cards

    # -- registration -------------------------------------------------------------------------

    async def register(
        self, session: AsyncSession, customer: User, draft: Draft, locale: str
    ) -> Registration:
        """Register the request once: a second Send of the same draft returns the first."""
        tickets = TicketRepo(session)
        existing = await tickets.by_intake_key(draft.key)
        if existing is not None:
            return Registration(existing, created=False)
        now = self.clock.now()
        priority = default_priority(draft.kind)
        ticket = await tickets.add(
            Ticket(
                intake_key=draft.key,
                customer_id=customer.id,
                account_number=draft.account_number,
                topic=draft.topic,
                kind=draft.kind,
                description=draft.description,
                priority=priority,
                status=Status.NEW,
                line=1,
                locale=locale,
                created_at=now,
                updated_at=now,
                reopened_count=0,
            )
        )
        await tickets.add_attachments(
            [
                Attachment(
                    ticket_number=ticket.number,
                    kind=item.kind,
                    file_id=item.file_id,
                    file_unique_id=item.file_unique_id,
                    file_name=item.file_name,
                    mime_type=item.mime_type,
                    created_at=now,
                )
                for item in draft.attachments
            ]
        )
        customer.last_account_number = draft.account_number
        EventRepo(session).record(
            ticket.number,
            at=now,
            type="created",
            actor_id=customer.id,
            actor_role="customer",
            new=Status.NEW.value,
            details={"kind": draft.kind.value, "priority": int(priority)},
        )
        await self._notify_registered(session, ticket, locale, now)
        await self.cards.post(session, ticket, _media_groups(draft.attachments))
        return Registration(ticket, created=True)

    async def _notify_registered(
        self, session: AsyncSession, ticket: Ticket, locale: str, now: datetime
    ) -> None:
        hours = self.config.hours
        opens_at = None if hours.is_open(now) else hours.next_opening(now)
        if opens_at is not None:
            ticket.after_hours_notice_at = now  # told once per ticket (SPEC §3)
        with self.i18n.use_locale(locale):
            text = views.registered_notice(
                number=ticket.number,
                topic=ticket.topic,
                kind=ticket.kind,
                priority=ticket.priority,
                opens_at=opens_at,
                now=now,
                hours_text=self.config.hours_text,
                tz=self.config.tz,
                locale=locale,
            )
        to_customer(self.outbox, session, ticket, text)

    # -- after registration ---------------------------------------------------------------------

    async def open_tickets(self, session: AsyncSession, customer_id: int) -> Sequence[Ticket]:
        return await TicketRepo(session).open_for_customer(customer_id)

    async def ticket_of_reply(
        self, session: AsyncSession, customer_id: int, replied_message_id: int
    ) -> Ticket | None:
        """The customer's own open ticket that the replied-to message belongs to, if any."""
        number = await LinkRepo(session).ticket_of_customer_message(customer_id, replied_message_id)
        if number is None:
            return None
        ticket = await TicketRepo(session).get(number)
        if ticket is None or ticket.customer_id != customer_id or not is_open(ticket.status):
            return None
        return ticket

    async def customer_ticket(
        self, session: AsyncSession, customer_id: int, number: int
    ) -> Ticket | None:
        """A ticket by number, only if it is this customer's (callback data can be forged)."""
        ticket = await TicketRepo(session).get(number)
        if ticket is None or ticket.customer_id != customer_id:
            return None
        return ticket

    async def relay(
        self,
        session: AsyncSession,
        customer: User,
        ticket: Ticket,
        items: Sequence[RelayItem],
        *,
        media_group_id: str | None,
        locale: str,
    ) -> RelayResult:
        """Add the customer's message(s) to their open ticket and relay them to staff."""
        if ticket.customer_id != customer.id or not is_open(ticket.status):
            raise PermissionError(f"ticket #{ticket.number} is not an open ticket of {customer.id}")
        now = self.clock.now()
        result = RelayResult(ticket)
        events = EventRepo(session)
        attachments = [item.attachment for item in items if item.attachment is not None]
        if attachments:
            await TicketRepo(session).add_attachments(
                [
                    Attachment(
                        ticket_number=ticket.number,
                        kind=a.kind,
                        file_id=a.file_id,
                        file_unique_id=a.file_unique_id,
                        file_name=a.file_name,
                        mime_type=a.mime_type,
                        created_at=now,
                    )
                    for a in attachments
                ]
            )
        events.record(
            ticket.number,
            at=now,
            type="customer_message",
            actor_id=customer.id,
            actor_role="customer",
            details={"message_ids": [item.message_id for item in items]},
        )
        if ticket.status is Status.WAITING_CUSTOMER:
            apply(
                session,
                ticket,
                Action.CUSTOMER_ANSWERED,
                actor_id=customer.id,
                role="customer",
                now=now,
                hours=self.config.hours,
            )
            result.reopened_from_waiting = True
            await self.cards.refresh(session, ticket)
        ticket.updated_at = now
        await self._relay_to_staff(session, ticket, items, media_group_id)
        if not self.config.hours.is_open(now) and ticket.after_hours_notice_at is None:
            ticket.after_hours_notice_at = now
            result.after_hours_notice = True
            with self.i18n.use_locale(locale):
                text = views.after_hours_notice(
                    number=ticket.number,
                    opens_at=self.config.hours.next_opening(now),
                    now=now,
                    hours_text=self.config.hours_text,
                    tz=self.config.tz,
                    locale=locale,
                )
            to_customer(self.outbox, session, ticket, text)
        return result

    async def _relay_to_staff(
        self,
        session: AsyncSession,
        ticket: Ticket,
        items: Sequence[RelayItem],
        media_group_id: str | None,
    ) -> None:
        staff = self.config.staff_chat_id
        ids = [item.message_id for item in items]
        album = [item.media for item in items if item.media is not None]
        if media_group_id is None or len(album) != len(items):
            for item in items:
                payload: dict[str, Any] = {
                    "chat_id": staff,
                    "from_chat_id": ticket.customer_id,
                    "message_id": item.message_id,
                }
                context: dict[str, Any] = {
                    "customer_message_ids": [item.message_id],
                    "customer_chat_id": ticket.customer_id,
                }
                if ticket.card_message_id is not None:
                    payload["reply_parameters"] = _reply_to(ticket.card_message_id)
                else:  # the card is still on its way: the sender fills its id in
                    context["reply_to_card"] = True
                self.outbox.add(
                    session,
                    chat_id=staff,
                    method=methods.CopyMessage,
                    payload=payload,
                    purpose="relay",
                    ticket_number=ticket.number,
                    rank=int(ticket.priority),
                    context=context,
                )
            return
        # An album arrives as one update per part. Parts join one pending delivery, which waits
        # a moment for the rest, so staff see the album together (copyMessages cannot reply to
        # the card; sendMediaGroup of the same file ids can).
        await self._relay_album(session, ticket, ids, album, media_group_id)

    async def _relay_album(
        self,
        session: AsyncSession,
        ticket: Ticket,
        ids: list[int],
        album: list[dict[str, Any]],
        media_group_id: str,
    ) -> None:
        staff = self.config.staff_chat_id
        stream = stream_of(staff, ticket.number)
        delivery = await DeliveryRepo(session).pending_album(stream, media_group_id)
        if delivery is None:
            delivery = self.outbox.add(
                session,
                chat_id=staff,
                method=methods.SendMediaGroup,
                payload={"chat_id": staff, "media": []},
                purpose="relay",
                ticket_number=ticket.number,
                rank=int(ticket.priority),
                context={
                    "reply_to_card": True,
                    "customer_message_ids": [],
                    "customer_chat_id": ticket.customer_id,
                    "media_group_id": media_group_id,
                    "from_chat_id": ticket.customer_id,
                },
                delay=ALBUM_GRACE,
            )
        payload, context = dict(delivery.payload), dict(delivery.context or {})
        merge_album(payload, context, ids, album)
        # New dicts, so the JSON columns are seen as changed.
        delivery.payload, delivery.context = payload, context
        await session.flush()

    async def carry_edit(self, session: AsyncSession, customer: User, message: Message) -> None:
        """The customer edited a message already relayed: edit the staff's copy too."""
        links = LinkRepo(session)
        copy_id = await links.staff_message_of_customer(customer.id, message.message_id)
        number = await links.ticket_of_customer_message(customer.id, message.message_id)
        ticket = await TicketRepo(session).get(number) if number is not None else None
        if copy_id is None or ticket is None or ticket.customer_id != customer.id:
            return
        edit_copy(self.outbox, session, ticket, self.config.staff_chat_id, copy_id, message)

    async def customer_tickets(
        self, session: AsyncSession, customer_id: int, *, limit: int = 15
    ) -> tuple[Sequence[Ticket], int]:
        repo = TicketRepo(session)
        return await repo.for_customer(customer_id, limit=limit), await repo.count_for_customer(
            customer_id
        )


def _reply_to(message_id: int) -> dict[str, Any]:
    return {"message_id": message_id, "allow_sending_without_reply": True}


def _media_groups(attachments: Sequence[AttachmentIn]) -> list[list[dict[str, Any]]]:
    """Screenshots as albums of at most 10; photos and files cannot share one album."""
    groups: list[list[dict[str, Any]]] = []
    for kind in ("photo", "document"):
        items = [{"type": kind, "media": a.file_id} for a in attachments if a.kind == kind]
        groups += [items[i : i + 10] for i in range(0, len(items), 10)]
    return groups
