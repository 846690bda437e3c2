"""Staff-side use cases (SPEC §5): act on a ticket from its card, relay answers and notes.

Every change goes through the ticket rules, is written to the history with who did it, and
refreshes the card; the customer is told what concerns them. Refusals come back as a
:class:`Refusal` with a sentence for the person who pressed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import html, methods
from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, MessageLink, Ticket, User
from bot.db.repositories import (
    DeliveryRepo,
    DeskSettings,
    EventRepo,
    LinkRepo,
    StaffDirectory,
    StaffQueries,
    TicketRepo,
    UserRepo,
)
from bot.domain.tickets import (
    Action,
    Priority,
    Status,
    can_reassign,
    is_open,
)
from bot.keyboards import staff as kb
from bot.services.albums import merge_album
from bot.services.cards import Cards, display_name
from bot.services.copies import edit_copy
from bot.services.delivery import ALBUM_GRACE, RANK_CUSTOMER_WAITING, Outbox, stream_of, to_customer
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal, apply_or_refuse, customer_locale
from bot.views import resolution as resolution_views
from bot.views import staff as views
from bot.views.labels import status_label

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Done:
    ticket: Ticket
    message: str


class StaffService:
    def __init__(
        self, *, clock: Clock, outbox: Outbox, i18n: I18n, config: DeskConfig, cards: Cards
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.i18n = i18n
        self.config = config
        self.cards = cards
        # Set by the app: what follows any close (the rating request, SPEC §3).
        self.after_close: Callable[[AsyncSession, Ticket], Awaitable[None]] | None = None

    # -- finding the ticket --------------------------------------------------------------------

    async def ticket(self, session: AsyncSession, number: int, *, lock: bool = False) -> Ticket:
        ticket = await TicketRepo(session).get(number, for_update=lock)
        if ticket is None:
            raise Refusal(_("There is no request #{number}.").format(number=number))
        return ticket

    async def ticket_of_staff_message(
        self, session: AsyncSession, message_id: int
    ) -> Ticket | None:
        number = await LinkRepo(session).ticket_of_staff_message(
            self.config.staff_chat_id, message_id
        )
        return await TicketRepo(session).get(number) if number is not None else None

    async def ticket_of_thread(self, session: AsyncSession, thread_id: int) -> Ticket | None:
        number = await LinkRepo(session).ticket_of_thread(self.config.staff_chat_id, thread_id)
        return await TicketRepo(session).get(number) if number is not None else None

    async def customer_message_of(self, session: AsyncSession, staff_message_id: int) -> int | None:
        return await LinkRepo(session).customer_message_of_staff(
            self.config.staff_chat_id, staff_message_id
        )

    # -- card buttons --------------------------------------------------------------------------

    async def take(self, session: AsyncSession, number: int, actor: User) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        if ticket.assignee_id == actor.id and ticket.status is not Status.NEW:
            raise Refusal(_("#{number} is already yours.").format(number=number))
        if ticket.assignee_id is not None and ticket.assignee_id != actor.id:
            holder = await UserRepo(session).get(ticket.assignee_id)
            raise Refusal(
                _("#{number} is already taken by {name}.").format(
                    number=number, name=display_name(holder, ticket.assignee_id)
                )
            )
        await self._assign(session, ticket, actor, actor)
        return Done(ticket, _("#{number} is yours now.").format(number=number))

    async def assign(
        self, session: AsyncSession, number: int, actor: User, assignee_id: int
    ) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        assignee = await UserRepo(session).get(assignee_id)
        if assignee is None:
            raise Refusal(_("That person is not known to the desk."))
        if ticket.assignee_id == assignee_id:
            raise Refusal(
                _("#{number} is already assigned to {name}.").format(
                    number=number, name=display_name(assignee)
                )
            )
        await self._assign(session, ticket, actor, assignee)
        return Done(
            ticket,
            _("#{number} is assigned to {name}.").format(
                number=number, name=display_name(assignee)
            ),
        )

    async def _assign(
        self, session: AsyncSession, ticket: Ticket, actor: User, assignee: User
    ) -> None:
        if not can_reassign(ticket.status):
            raise Refusal(self._closed(ticket))
        now = self.clock.now()
        events = EventRepo(session)
        old = await UserRepo(session).get(ticket.assignee_id) if ticket.assignee_id else None
        events.record(
            ticket.number,
            at=now,
            type="assignee",
            actor_id=actor.id,
            actor_role="staff",
            old=display_name(old) if old else None,
            new=display_name(assignee),
            details={"assignee_id": assignee.id},
        )
        ticket.assignee_id = assignee.id
        if ticket.status is Status.NEW:
            self._move(session, ticket, Action.TAKE, actor, now)
        ticket.updated_at = now
        await self.cards.refresh(session, ticket)
        name = display_name(assignee)
        await self._tell_customer(session, ticket, lambda: views.taken_notice(ticket.number, name))

    async def set_priority(
        self, session: AsyncSession, number: int, actor: User, priority: Priority
    ) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        if not can_reassign(ticket.status):
            raise Refusal(self._closed(ticket))
        if ticket.priority == priority:
            raise Refusal(_("The priority is already {priority}.").format(priority=priority.name))
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="priority",
            actor_id=actor.id,
            actor_role="staff",
            old=str(int(ticket.priority)),
            new=str(int(priority)),
        )
        ticket.priority = priority
        ticket.updated_at = self.clock.now()
        await self.cards.refresh(session, ticket)
        return Done(
            ticket,
            _("Priority of #{number}: {priority}.").format(number=number, priority=priority.name),
        )

    async def set_line(self, session: AsyncSession, number: int, actor: User, line: int) -> Done:
        if line not in (1, 2, 3):
            raise Refusal(_("The support line is 1, 2 or 3."))
        ticket = await self.ticket(session, number, lock=True)
        if not can_reassign(ticket.status):
            raise Refusal(self._closed(ticket))
        if ticket.line == line:
            raise Refusal(_("The line is already {line}.").format(line=line))
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="line",
            actor_id=actor.id,
            actor_role="staff",
            old=str(ticket.line),
            new=str(line),
        )
        ticket.line = line
        ticket.updated_at = self.clock.now()
        await self.cards.refresh(session, ticket)
        return Done(ticket, _("#{number} is on line {line}.").format(number=number, line=line))

    async def ask_info(self, session: AsyncSession, number: int, actor: User) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        if ticket.status is Status.NEW:
            await self._assign(session, ticket, actor, actor)
        self._move(session, ticket, Action.ASK_INFO, actor, self.clock.now())
        await self.cards.refresh(session, ticket)
        await self._tell_customer(session, ticket, lambda: views.ask_info_notice(ticket.number))
        if self.config.staff_is_forum:
            hint = _("#{number} waits for the customer. Write your question in this topic.")
        else:
            hint = _(
                "#{number} waits for the customer. Write your question as a reply to the card."
            )
        return Done(ticket, hint.format(number=number))

    async def resolve_prompt(self, session: AsyncSession, number: int, actor: User) -> Done:
        """Resolve asks for the answer in the ticket's thread (or takes the last one)."""
        ticket = await self.ticket(session, number)
        if ticket.status not in (Status.NEW, Status.IN_PROGRESS, Status.WAITING_CUSTOMER):
            raise Refusal(
                _("#{number} is {status}: that is not possible now.").format(
                    number=number, status=status_label(ticket.status).lower()
                )
            )
        has_last = await EventRepo(session).last_staff_message(ticket.number) is not None
        markup = kb.resolve_prompt(number) if has_last else None
        staff_chat = self.config.staff_chat_id
        payload: dict[str, Any] = {
            "chat_id": staff_chat,
            "text": resolution_views.resolve_prompt(number, has_last),
        }
        if markup is not None:
            payload["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.SendMessage,
            payload=payload,
            purpose="resolve_prompt",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"reply_to_card": True, "customer_chat_id": ticket.customer_id},
        )
        return Done(ticket, _("Write the answer as a reply to my message."))

    async def is_resolve_prompt(self, session: AsyncSession, message_id: int) -> bool:
        direction = await LinkRepo(session).direction_of_staff_message(
            self.config.staff_chat_id, message_id
        )
        return direction == "resolve_prompt"

    async def close(self, session: AsyncSession, number: int, actor: User) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        now = self.clock.now()
        self._move(session, ticket, Action.CLOSE_BY_STAFF, actor, now)
        await self.cards.refresh(session, ticket)
        await self._tell_customer(session, ticket, lambda: views.closed_notice(ticket.number))
        if self.after_close is not None:
            await self.after_close(session, ticket)
        return Done(ticket, _("#{number} is closed.").format(number=number))

    def _move(
        self, session: AsyncSession, ticket: Ticket, action: Action, actor: User, now: datetime
    ) -> None:
        apply_or_refuse(
            session,
            ticket,
            action,
            actor_id=actor.id,
            role="staff",
            now=now,
            hours=self.config.hours,
            refusal=_("#{number} is {status}: that is not possible now."),
        )

    def _closed(self, ticket: Ticket) -> str:
        return _("#{number} is closed: nothing can change it.").format(number=ticket.number)

    # -- conversation --------------------------------------------------------------------------

    async def _tell_customer(
        self, session: AsyncSession, ticket: Ticket, render: Callable[[], str]
    ) -> None:
        """A notice to the customer, in the customer's language."""
        with self.i18n.use_locale(await customer_locale(session, ticket)):
            text = render()
        to_customer(self.outbox, session, ticket, text)

    async def answer(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        staff_message_id: int,
        reply_to_customer_message: int | None,
        album: tuple[str, dict[str, Any]] | None = None,
    ) -> Done:
        """Copy a staff message to the customer (the first answer takes the ticket)."""
        if not is_open(ticket.status):
            raise Refusal(self._closed(ticket))
        now = self.clock.now()
        first = ticket.first_response_at is None
        if first:
            ticket.first_response_at = now  # before the card is drawn: the SLA is met
        if ticket.status is Status.NEW:
            await self._assign(session, ticket, actor, actor)
        elif first:
            await self.cards.refresh(session, ticket)
        EventRepo(session).record(
            ticket.number,
            at=now,
            type="staff_message",
            actor_id=actor.id,
            actor_role="staff",
            details={"message_id": staff_message_id},
        )
        if album is not None:
            await self._answer_album(session, ticket, staff_message_id, *album)
        else:
            payload: dict[str, object] = {
                "chat_id": ticket.customer_id,
                "from_chat_id": self.config.staff_chat_id,
                "message_id": staff_message_id,
            }
            if reply_to_customer_message is not None:
                payload["reply_parameters"] = {
                    "message_id": reply_to_customer_message,
                    "allow_sending_without_reply": True,
                }
            self.outbox.add(
                session,
                chat_id=ticket.customer_id,
                method=methods.CopyMessage,
                payload=dict(payload),
                purpose="answer",
                ticket_number=ticket.number,
                rank=RANK_CUSTOMER_WAITING,
                context={
                    "customer_chat_id": ticket.customer_id,
                    "staff_message_ids": [staff_message_id],
                },
            )
        ticket.updated_at = now
        return Done(ticket, "")

    async def _answer_album(
        self,
        session: AsyncSession,
        ticket: Ticket,
        staff_message_id: int,
        media_group_id: str,
        media: dict[str, Any],
    ) -> None:
        """Album parts arrive one by one; they join one delivery, so the customer gets the
        album together (the same way as customer albums reach staff)."""
        stream = stream_of(ticket.customer_id, ticket.number)
        delivery = await DeliveryRepo(session).pending_album(stream, media_group_id)
        if delivery is None:
            delivery = self.outbox.add(
                session,
                chat_id=ticket.customer_id,
                method=methods.SendMediaGroup,
                payload={"chat_id": ticket.customer_id, "media": []},
                purpose="answer",
                ticket_number=ticket.number,
                rank=RANK_CUSTOMER_WAITING,
                context={
                    "customer_chat_id": ticket.customer_id,
                    "staff_message_ids": [],
                    "media_group_id": media_group_id,
                    "from_chat_id": self.config.staff_chat_id,
                },
                delay=ALBUM_GRACE,
            )
        payload, context = dict(delivery.payload), dict(delivery.context or {})
        merge_album(payload, context, [staff_message_id], [media], key="staff_message_ids")
        delivery.payload, delivery.context = payload, context
        await session.flush()

    def note(self, session: AsyncSession, ticket: Ticket, actor: User, text: str) -> None:
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="note",
            actor_id=actor.id,
            actor_role="staff",
            details={"text": text[:4000]},
        )

    async def show_ticket(
        self, session: AsyncSession, number: int, locale: str, thread_id: int | None
    ) -> None:
        """/ticket N: the card (with its buttons) and the history, where it was asked."""
        ticket = await self.ticket(session, number)
        text, markup = await self.cards.render(session, ticket)
        staff_chat = self.config.staff_chat_id
        extra = {"message_thread_id": thread_id} if thread_id else {}
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.SendMessage,
            payload={"chat_id": staff_chat, "text": text, "reply_markup": markup, **extra},
            purpose="card_copy",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"customer_chat_id": ticket.customer_id},
        )
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.SendMessage,
            payload={
                "chat_id": staff_chat,
                "text": await self.history(session, number, locale),
                **extra,
            },
            purpose="staff_note",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"customer_chat_id": ticket.customer_id},
        )

    async def show_keyboard(
        self, session: AsyncSession, number: int, message_id: int, markup: InlineKeyboardMarkup
    ) -> None:
        ticket = await self.ticket(session, number)
        staff_chat = self.config.staff_chat_id
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.EditMessageReplyMarkup,
            payload={
                "chat_id": staff_chat,
                "message_id": message_id,
                "reply_markup": markup.model_dump(mode="json", exclude_none=True),
            },
            purpose="menu",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
        )

    async def known_staff(self, session: AsyncSession) -> Sequence[User]:
        return await StaffDirectory(session).known()

    async def post_to_ticket(self, session: AsyncSession, number: int, text: str) -> None:
        self.cards.post_to_ticket(session, await self.ticket(session, number), text)

    async def carry_edit(self, session: AsyncSession, message: Message) -> None:
        """A staff answer was edited: edit the customer's copy the same way."""
        links = LinkRepo(session)
        number = await links.ticket_of_staff_message(self.config.staff_chat_id, message.message_id)
        copy_id = await links.customer_message_of_staff(
            self.config.staff_chat_id, message.message_id
        )
        ticket = await TicketRepo(session).get(number) if number is not None else None
        if ticket is None or copy_id is None:
            return
        edit_copy(self.outbox, session, ticket, ticket.customer_id, copy_id, message)

    async def undelivered(self, session: AsyncSession, delivery: Delivery) -> None:
        """A message to the customer could not be delivered: say so in the ticket."""
        if delivery.ticket_number is None:
            return
        error = delivery.error or ""
        # Called from the sender, outside any update: set the i18n context ourselves.
        with self.i18n.context(), self.i18n.use_locale(self.config.default_locale):
            if "blocked" in error:
                reason = _("the customer has blocked the bot")
            elif "deactivated" in error or "chat not found" in error:
                reason = _("the customer's account is deleted")
            else:
                reason = _("Telegram refused it: {error}").format(error=html.quote(error[:200]))
            text = _(
                "⚠️ A message to the customer of #{number} was not delivered: {reason}."
            ).format(number=delivery.ticket_number, reason=reason)
        await self.post_to_ticket(session, delivery.ticket_number, text)

    async def follow_migration(self, session: AsyncSession, new_chat_id: int) -> None:
        """Telegram upgraded the staff group to a supergroup with a new id: follow it."""
        log.warning("the staff group moved: %s -> %s", self.config.staff_chat_id, new_chat_id)
        self.config.staff_chat_id = new_chat_id
        await DeskSettings(session).put("staff_chat_id", str(new_chat_id))

    # -- reading -------------------------------------------------------------------------------

    async def history(self, session: AsyncSession, number: int, locale: str) -> str:
        ticket = await self.ticket(session, number)
        events = await EventRepo(session).for_ticket(ticket.number)
        users = UserRepo(session)
        names: dict[int, str] = {}
        lines = []
        for event in events:
            if event.actor_id is None:
                actor = _("the desk")
            else:
                if event.actor_id not in names:
                    names[event.actor_id] = display_name(
                        await users.get(event.actor_id), event.actor_id
                    )
                actor = names[event.actor_id]
            lines.append(
                views.EventLine(
                    at=event.at,
                    actor=actor,
                    type=event.type,
                    old=event.old,
                    new=event.new,
                    text=(event.details or {}).get("text"),
                )
            )
        return views.history(ticket.number, lines, tz=self.config.tz, locale=locale)

    async def queue(
        self, session: AsyncSession, *, page: int, per_page: int, locale: str
    ) -> tuple[str, int]:
        queries = StaffQueries(session)
        total = await queries.count_open()
        pages = max(1, -(-total // per_page))
        page = min(max(page, 0), pages - 1)
        rows = await queries.open_queue(offset=page * per_page, limit=per_page)
        now = self.clock.now()
        lines = [
            views.QueueLine(
                number=ticket.number,
                priority=ticket.priority,
                status=ticket.status,
                topic=ticket.topic,
                assignee=display_name(assignee) if assignee else None,
                age=now - ticket.created_at,
                sla=self.cards.sla(ticket),
            )
            for ticket, assignee in rows
        ]
        return views.queue(lines, page=page, pages=pages, total=total, locale=locale), pages

    async def find(self, session: AsyncSession, query: str) -> str:
        rows = await StaffQueries(session).find(query.strip(), limit=20)
        return views.found(query, [(t.number, t.status, t.topic) for t in rows])

    async def staff_members(self, session: AsyncSession, ids: Sequence[int]) -> list[User]:
        users = UserRepo(session)
        found = [await users.get(user_id) for user_id in ids]
        return [user for user in found if user is not None]

    async def remember_staff_link(
        self, session: AsyncSession, ticket: Ticket, staff_message_id: int, kind: str
    ) -> None:
        LinkRepo(session).add(
            MessageLink(
                ticket_number=ticket.number,
                direction=kind,
                customer_chat_id=ticket.customer_id,
                customer_message_id=None,
                staff_chat_id=self.config.staff_chat_id,
                staff_message_id=staff_message_id,
                created_at=self.clock.now(),
            )
        )
