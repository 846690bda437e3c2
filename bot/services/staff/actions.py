"""What staff do to a ticket from its card (SPEC §5): take, assign, set the priority or the
line, ask the customer for information, the Resolve prompt, close; and the card's menus.

Every change goes through the ticket rules, is written to the history with who did it, and
refreshes the card; the customer is told what concerns them, in their language. A refusal comes
back as a :class:`Refusal` for the person who pressed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiogram import methods
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, Ticket, User
from bot.db.repositories import EventRepo, UserRepo
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs
from bot.delivery.outbox import Outbox
from bot.domain.tickets import Action, Priority, Status, can_reassign
from bot.services.assignment import Assignment, closed_refusal
from bot.services.cards import Cards, display_name
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal, apply_or_refuse
from bot.services.notices_staff import ClosedByStaff, InfoAsked, ResolvePrompt
from bot.services.outgoing import TicketTags, tell_customer
from bot.services.rendering import Renderer
from bot.services.staff.lookup import StaffLookup

AfterClose = Callable[[AsyncSession, Ticket], Awaitable[None]]


class StaffActions:
    def __init__(
        self,
        *,
        clock: Clock,
        outbox: Outbox,
        config: DeskConfig,
        cards: Cards,
        lookup: StaffLookup,
        render: Renderer,
        assignment: Assignment,
        after_close: AfterClose | None = None,
    ) -> None:
        self.assignment = assignment
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.cards = cards
        self.lookup = lookup
        self.render = render
        # What follows any close (the rating request, SPEC §3).
        self.after_close = after_close

    # -- the card's buttons --------------------------------------------------------------------

    async def take(self, session: AsyncSession, number: int, actor: User) -> Ticket:
        ticket = await self.lookup.ticket(session, number, lock=True)
        if ticket.assignee_id == actor.id and ticket.status is not Status.NEW:
            raise Refusal(_("#{number} is already yours."), number=number)
        if ticket.assignee_id is not None and ticket.assignee_id != actor.id:
            holder = await UserRepo(session).get(ticket.assignee_id)
            raise Refusal(
                _("#{number} is already taken by {name}."),
                number=number,
                name=display_name(holder, ticket.assignee_id),
            )
        await self.assign_to(session, ticket, actor, actor)
        return ticket

    async def assign(
        self, session: AsyncSession, number: int, actor: User, assignee_id: int
    ) -> User:
        """Returns who is assigned now."""
        ticket = await self.lookup.ticket(session, number, lock=True)
        assignee = await UserRepo(session).get(assignee_id)
        if assignee is None:
            raise Refusal(_("That person is not known to the desk."))
        if ticket.assignee_id == assignee_id:
            raise Refusal(
                _("#{number} is already assigned to {name}."),
                number=number,
                name=display_name(assignee),
            )
        await self.assign_to(session, ticket, actor, assignee)
        return assignee

    async def assign_to(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        assignee: User,
        *,
        hold: timedelta | None = None,
    ) -> Delivery:
        """Make ``assignee`` the ticket's assignee (the shared path: bot/services/assignment.py)
        and tell the customer; returns that notice."""
        notice = await self.assignment.assign(session, ticket, actor, assignee, hold=hold)
        assert notice is not None  # told: ``tell`` is on
        return notice

    async def set_priority(
        self, session: AsyncSession, number: int, actor: User, priority: Priority
    ) -> Ticket:
        ticket = await self.lookup.ticket(session, number, lock=True)
        if not can_reassign(ticket.status):
            raise closed_refusal(ticket)
        if ticket.priority == priority:
            raise Refusal(_("The priority is already {priority}."), priority=priority.name)
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
        return ticket

    async def set_line(self, session: AsyncSession, number: int, actor: User, line: int) -> Ticket:
        if line not in (1, 2, 3):
            raise Refusal(_("The support line is 1, 2 or 3."))
        ticket = await self.lookup.ticket(session, number, lock=True)
        if not can_reassign(ticket.status):
            raise closed_refusal(ticket)
        if ticket.line == line:
            raise Refusal(_("The line is already {line}."), line=line)
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
        return ticket

    async def ask_info(self, session: AsyncSession, number: int, actor: User) -> Ticket:
        ticket = await self.lookup.ticket(session, number, lock=True)
        if ticket.status is Status.NEW:
            await self.assign_to(session, ticket, actor, actor)
        self.move(session, ticket, Action.ASK_INFO, actor, self.clock.now())
        await self.cards.refresh(session, ticket)
        await self._tell_customer(session, ticket, InfoAsked(ticket.number))
        return ticket

    async def resolve_prompt(self, session: AsyncSession, number: int, locale: str) -> Ticket:
        """Resolve asks for the answer in the ticket's thread (or takes the last one), in the
        language of the staff member who pressed."""
        ticket = await self.lookup.ticket(session, number)
        if ticket.status not in (Status.NEW, Status.IN_PROGRESS, Status.WAITING_CUSTOMER):
            raise Refusal(
                _("#{number} is {status}: that is not possible now."),
                number=number,
                status=ticket.status,
            )
        has_last = await EventRepo(session).last_staff_message(ticket.number) is not None
        prompt = self.render(ResolvePrompt(ticket.number, has_last), locale)
        staff_chat = self.config.staff_chat_id
        payload: dict[str, Any] = {"chat_id": staff_chat, "text": prompt.text}
        if prompt.reply_markup is not None:
            payload["reply_markup"] = prompt.reply_markup
        self.outbox.add(
            session,
            Intent(
                chat_id=staff_chat,
                method=methods.SendMessage,
                payload=payload,
                purpose="resolve_prompt",
                subject=ticket.number,
                rank=int(ticket.priority),
                refs=Refs(party=ticket.customer_id),
                tags=TicketTags(reply_to_card=True),
            ),
        )
        return ticket

    async def close(self, session: AsyncSession, number: int, actor: User) -> Ticket:
        ticket = await self.lookup.ticket(session, number, lock=True)
        self.move(session, ticket, Action.CLOSE_BY_STAFF, actor, self.clock.now())
        await self.cards.refresh(session, ticket)
        await self._tell_customer(session, ticket, ClosedByStaff(ticket.number))
        if self.after_close is not None:
            await self.after_close(session, ticket)
        return ticket

    async def refresh_card(self, session: AsyncSession, number: int) -> None:
        """Draw the card as the ticket is now (the one on screen may be out of date)."""
        await self.cards.refresh(session, await self.lookup.ticket(session, number))

    # -- the card's menus and copies -----------------------------------------------------------

    async def show_menu(
        self,
        session: AsyncSession,
        number: int,
        message_id: int,
        reply_markup: dict[str, Any],
    ) -> None:
        """Swap the buttons under a card: through the outbox, in the ticket's stream, so after
        any card edit already on its way."""
        ticket = await self.lookup.ticket(session, number)
        staff_chat = self.config.staff_chat_id
        self.outbox.add(
            session,
            Intent(
                chat_id=staff_chat,
                method=methods.EditMessageReplyMarkup,
                payload={
                    "chat_id": staff_chat,
                    "message_id": message_id,
                    "reply_markup": reply_markup,
                },
                purpose="menu",
                subject=ticket.number,
                rank=int(ticket.priority),
            ),
        )

    async def show_ticket(
        self, session: AsyncSession, number: int, history: str, thread_id: int | None
    ) -> None:
        """/ticket N: a copy of the card (with its buttons) and the ticket's ``history``, where
        it was asked (the General topic too, not the ticket's own topic), ahead of the ticket's
        queued messages: someone is waiting for it."""
        ticket = await self.lookup.ticket(session, number)
        card = await self.cards.render(session, ticket)
        staff_chat = self.config.staff_chat_id
        extra = {"message_thread_id": thread_id} if thread_id else {}
        asked = f"{staff_chat}:asked:{thread_id or 0}"
        self.outbox.add(
            session,
            Intent(
                chat_id=staff_chat,
                method=methods.SendMessage,
                payload={
                    "chat_id": staff_chat,
                    "text": card.text,
                    "reply_markup": card.reply_markup,
                    **extra,
                },
                purpose="card_copy",
                subject=ticket.number,
                refs=Refs(party=ticket.customer_id),
                stream=asked,
                rank=RANK_CUSTOMER_WAITING,
                tags=TicketTags(here=True),
            ),
        )
        self.outbox.add(
            session,
            Intent(
                chat_id=staff_chat,
                method=methods.SendMessage,
                payload={"chat_id": staff_chat, "text": history, **extra},
                purpose="staff_note",
                subject=ticket.number,
                refs=Refs(party=ticket.customer_id),
                stream=asked,
                rank=RANK_CUSTOMER_WAITING,
                tags=TicketTags(here=True),
            ),
        )

    async def post_to_ticket(self, session: AsyncSession, number: int, text: str) -> None:
        self.cards.post_to_ticket(session, await self.lookup.ticket(session, number), text)

    # -- shared with the relay -----------------------------------------------------------------

    def move(
        self, session: AsyncSession, ticket: Ticket, action: Action, actor: User, now: datetime
    ) -> None:
        apply_or_refuse(
            session,
            ticket,
            action,
            actor_id=actor.id,
            role="staff",
            now=now,
            hours=self.config.terms(ticket.tariff, ticket.kind).hours,
            refusal=_("#{number} is {status}: that is not possible now."),
        )

    async def _tell_customer(
        self, session: AsyncSession, ticket: Ticket, notice: object
    ) -> Delivery:
        return await tell_customer(self.outbox, self.render, session, ticket, notice)
