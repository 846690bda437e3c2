"""Who works on a ticket: one path for Take, Assign, the first staff answer and a Resolve of a
ticket nobody had taken yet. The assignee change is in the history, a new ticket is taken
(``new`` → ``in_progress``), the card is redrawn and the customer is told who has it."""

from __future__ import annotations

from datetime import timedelta

from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, Ticket, User
from bot.db.repositories import EventRepo, UserRepo
from bot.delivery.outbox import Outbox
from bot.domain.tickets import Action, Status, can_reassign
from bot.services.cards import Cards, display_name
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal, apply_or_refuse
from bot.services.notices_staff import Taken
from bot.services.outgoing import tell_customer
from bot.services.rendering import Renderer


def closed_refusal(ticket: Ticket) -> Refusal:
    return Refusal(_("#{number} is closed: nothing can change it."), number=ticket.number)


class Assignment:
    def __init__(
        self, *, clock: Clock, outbox: Outbox, config: DeskConfig, cards: Cards, render: Renderer
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.cards = cards
        self.render = render

    async def assign(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        assignee: User,
        *,
        hold: timedelta | None = None,
        tell: bool = True,
    ) -> Delivery | None:
        """Make ``assignee`` the ticket's assignee (a new ticket is taken by it) and tell the
        customer, unless ``tell`` is off (the answer itself follows at once); ``hold`` keeps
        that notice back a moment (it can still be taken back)."""
        if not can_reassign(ticket.status):
            raise closed_refusal(ticket)
        now = self.clock.now()
        old = await UserRepo(session).get(ticket.assignee_id) if ticket.assignee_id else None
        EventRepo(session).record(
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
            apply_or_refuse(
                session,
                ticket,
                Action.TAKE,
                actor_id=actor.id,
                role="staff",
                now=now,
                hours=self.config.terms(ticket.tariff, ticket.kind).hours,
                refusal=_("#{number} is {status}: that is not possible now."),
            )
        ticket.updated_at = now
        await self.cards.refresh(session, ticket)
        if not tell:
            return None
        notice = await tell_customer(
            self.outbox, self.render, session, ticket, Taken(ticket.number, display_name(assignee))
        )
        if hold is not None:
            notice.not_before += hold
        return notice
