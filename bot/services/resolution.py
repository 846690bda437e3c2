"""After work has started (SPEC §3): the answer and its confirmation, disputes, closing by the
customer, ratings, and the timers that remind and auto-close."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiogram.utils.i18n import gettext as _
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Ticket, User, is_mail_customer
from bot.db.repositories import EventRepo, TicketRepo
from bot.delivery.outbox import Outbox
from bot.domain.sla import SlaState
from bot.domain.tickets import Action, Status, is_open
from bot.services import notices_customer as notices
from bot.services import notices_desk as desk_notices
from bot.services.assignment import Assignment
from bot.services.cards import Cards
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal, apply, apply_or_refuse
from bot.services.outgoing import copy_answer, tell_customer
from bot.services.rendering import Renderer

log = logging.getLogger(__name__)

LOW_RATING = 2

AfterDispute = Callable[[AsyncSession, Ticket, str], Awaitable[None]]


class ResolutionService:
    def __init__(
        self,
        *,
        clock: Clock,
        outbox: Outbox,
        config: DeskConfig,
        cards: Cards,
        render: Renderer,
        assignment: Assignment,
        reminder_after: timedelta,
        auto_close_after: timedelta,
    ) -> None:
        self.assignment = assignment
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.cards = cards
        self.render = render
        self.reminder_after = reminder_after
        self.auto_close_after = auto_close_after
        # What follows a dispute beyond the reopening (a linked incident leaves its problem,
        # bot/services/problems.py); set once the services are built.
        self.after_dispute: AfterDispute | None = None

    # -- helpers -------------------------------------------------------------------------------

    async def _tell(
        self, session: AsyncSession, ticket: Ticket, notice: object, purpose: str = "notice"
    ) -> None:
        await tell_customer(self.outbox, self.render, session, ticket, notice, purpose=purpose)

    def _to_staff(self, session: AsyncSession, ticket: Ticket, notice: object) -> None:
        rendered = self.render(notice, self.config.default_locale)
        self.cards.post_to_ticket(session, ticket, rendered.text)

    async def _own(self, session: AsyncSession, customer: User, number: int) -> Ticket:
        """The customer's own ticket (callback data names it and can be forged)."""
        ticket = await TicketRepo(session).get(number, for_update=True)
        if ticket is None or ticket.customer_id != customer.id:
            raise Refusal(_("This button is no longer active."))
        return ticket

    def _apply(
        self, session: AsyncSession, ticket: Ticket, action: Action, actor_id: int | None, role: str
    ) -> None:
        apply_or_refuse(
            session,
            ticket,
            action,
            actor_id=actor_id,
            role=role,
            now=self.clock.now(),
            hours=self.config.terms(ticket.tariff, ticket.kind).hours,
            refusal=_("Request #{number} is {status} now."),
        )

    # -- staff: the answer ---------------------------------------------------------------------

    async def resolve(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        answer_message_id: int | None,
        content: dict[str, Any] | None = None,
        *,
        problem: int | None = None,
    ) -> None:
        """The answer (a staff message, copied; ``content``: what it says, for a customer who
        writes by e-mail) and the Solved / Not solved question. ``problem``: the answer is the
        one of that problem ticket, resolving its linked incidents with it (SPEC §13)."""
        now = self.clock.now()
        if ticket.status is Status.NEW:
            # Taken by whoever answers, as staff's own Take (the answer follows at once: no
            # separate word to the customer about who has it).
            await self.assignment.assign(session, ticket, actor, actor, tell=False)
        self._apply(session, ticket, Action.RESOLVE, actor.id, "staff")
        if ticket.first_response_at is None:
            ticket.first_response_at = now
        if answer_message_id is not None:
            details: dict[str, Any] = {"message_id": answer_message_id, "answer": True}
            if problem is not None:
                details["problem"] = problem
            EventRepo(session).record(
                ticket.number,
                at=now,
                type="staff_message",
                actor_id=actor.id,
                actor_role="staff",
                details=details,
            )
            copy_answer(
                self.outbox,
                session,
                ticket,
                from_chat_id=self.config.staff_chat_id,
                message_id=answer_message_id,
                content=content if is_mail_customer(ticket.customer_id) else None,
                shared=problem is not None,
            )
        notice = notices.ConfirmQuestion(ticket.number, self.auto_close_after)
        await self._tell(session, ticket, notice, purpose="confirm")
        await self.cards.refresh(session, ticket)

    async def ask_again(self, session: AsyncSession, ticket: Ticket) -> None:
        """The customer wrote to a resolved ticket: relayed, and asked the same question."""
        await self._tell(session, ticket, notices.StillResolved(ticket.number), purpose="confirm")

    # -- the customer's answer -----------------------------------------------------------------

    async def confirm(self, session: AsyncSession, customer: User, number: int) -> Ticket:
        ticket = await self._own(session, customer, number)
        self._apply(session, ticket, Action.CONFIRM, customer.id, "customer")
        await self.cards.refresh(session, ticket)
        await self._tell(session, ticket, notices.ClosedConfirmed(ticket.number))
        await self.ask_rating(session, ticket)
        return ticket

    async def check_can_dispute(self, session: AsyncSession, customer: User, number: int) -> None:
        ticket = await self._own(session, customer, number)
        if ticket.status is not Status.RESOLVED:
            raise Refusal(
                _("Request #{number} is {status} now."), number=number, status=ticket.status
            )

    async def dispute(
        self, session: AsyncSession, customer: User, number: int, reason: str
    ) -> Ticket:
        ticket = await self._own(session, customer, number)
        self._apply(session, ticket, Action.DISPUTE, customer.id, "customer")
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="dispute",
            actor_id=customer.id,
            actor_role="customer",
            details={"text": reason[:4000]},
        )
        self._to_staff(session, ticket, desk_notices.DisputeReason(ticket.number, reason))
        if self.after_dispute is not None:
            await self.after_dispute(session, ticket, reason)
        await self.cards.refresh(session, ticket)
        await self._tell(session, ticket, notices.Reopened(ticket.number))
        return ticket

    async def check_can_close(self, session: AsyncSession, customer: User, number: int) -> None:
        ticket = await self._own(session, customer, number)
        if not is_open(ticket.status):
            raise Refusal(_("Request #{number} is closed already."), number=number)

    async def close_by_customer(
        self, session: AsyncSession, customer: User, number: int, reason: str
    ) -> Ticket:
        ticket = await self._own(session, customer, number)
        self._apply(session, ticket, Action.CLOSE_BY_CUSTOMER, customer.id, "customer")
        ticket.close_note = reason[:1000]
        self._to_staff(session, ticket, desk_notices.CustomerClosed(ticket.number, reason))
        await self.cards.refresh(session, ticket)
        await self._tell(session, ticket, notices.ClosedByCustomer(ticket.number))
        await self.ask_rating(session, ticket)
        return ticket

    # -- ratings -------------------------------------------------------------------------------

    async def ask_rating(self, session: AsyncSession, ticket: Ticket) -> None:
        # A reopened ticket is rated again when it closes: the old rating gives way.
        ticket.rating, ticket.rating_comment = None, None
        await self._tell(session, ticket, notices.AskRating(ticket.number), purpose="rating")

    async def rate(self, session: AsyncSession, customer: User, number: int, score: int) -> None:
        ticket = await self._own(session, customer, number)
        if ticket.status is not Status.CLOSED or not 1 <= score <= 5:
            raise Refusal(_("This button is no longer active."))
        ticket.rating = score
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="rating",
            actor_id=customer.id,
            actor_role="customer",
            new=str(score),
        )
        if score <= LOW_RATING:
            self._to_staff(session, ticket, desk_notices.LowRating(ticket.number, score))

    async def comment(self, session: AsyncSession, customer: User, number: int, text: str) -> None:
        ticket = await self._own(session, customer, number)
        ticket.rating_comment = text[:2000]
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="rating_comment",
            actor_id=customer.id,
            actor_role="customer",
            details={"text": text[:2000]},
        )
        self._to_staff(session, ticket, desk_notices.RatingComment(ticket.number, text))

    # -- timers --------------------------------------------------------------------------------

    async def remind(self, session: AsyncSession, number: int) -> bool:
        """Remind once: the conditional update claims the reminder for this sweep alone."""
        now = self.clock.now()
        claimed = await session.execute(
            update(Ticket)
            .where(
                Ticket.number == number,
                Ticket.status == Status.RESOLVED.value,
                Ticket.reminded_at.is_(None),
                Ticket.resolved_at <= now - self.reminder_after,
            )
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return False
        ticket = await TicketRepo(session).get(number)
        assert ticket is not None
        await session.refresh(ticket)
        left = self.auto_close_after - self.reminder_after
        EventRepo(session).record(
            number, at=now, type="reminder", actor_id=None, actor_role="system"
        )
        await self._tell(session, ticket, notices.Reminder(number, left), purpose="confirm")
        return True

    async def auto_close(self, session: AsyncSession, number: int) -> bool:
        now = self.clock.now()
        ticket = await TicketRepo(session).get(number, for_update=True)
        if ticket is None:
            return False
        await session.refresh(ticket)
        due = ticket.resolved_at is not None and ticket.resolved_at <= now - self.auto_close_after
        if ticket.status is not Status.RESOLVED or not due:
            return False  # another sweep (or the customer) got there first
        apply(
            session,
            ticket,
            Action.AUTO_CLOSE,
            actor_id=None,
            role="system",
            now=now,
            hours=self.config.terms(ticket.tariff, ticket.kind).hours,
        )
        await self.cards.refresh(session, ticket)
        await self._tell(session, ticket, notices.ClosedAuto(number))
        await self.ask_rating(session, ticket)
        return True

    def sla_alert_due(self, ticket: Ticket) -> bool:
        state = self.cards.sla(ticket).state
        return (state is SlaState.BREACHED and ticket.sla_breached_at is None) or (
            state is SlaState.NEAR and ticket.sla_warned_at is None
        )

    async def check_sla(self, session: AsyncSession, number: int) -> bool:
        """Warn staff once when a ticket nears its first-response target, once when it
        breaches it (each claimed by a conditional update, like the other timers)."""
        ticket = await TicketRepo(session).get(number)
        if ticket is None or ticket.first_response_at is not None:
            return False
        await session.refresh(ticket)
        sla = self.cards.sla(ticket)
        now = self.clock.now()
        if sla.state is SlaState.BREACHED and ticket.sla_breached_at is None:
            column, condition = "sla_breached_at", Ticket.sla_breached_at.is_(None)
        elif sla.state is SlaState.NEAR and ticket.sla_warned_at is None:
            column, condition = "sla_warned_at", Ticket.sla_warned_at.is_(None)
        else:
            return False
        claimed = await session.execute(
            update(Ticket)
            .where(Ticket.number == number, condition, Ticket.first_response_at.is_(None))
            .values({column: now})
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return False
        await session.refresh(ticket)
        EventRepo(session).record(
            number, at=now, type=f"sla_{sla.state.value}", actor_id=None, actor_role="system"
        )
        self._to_staff(session, ticket, desk_notices.SlaAlert(number, sla))
        await self.cards.refresh(session, ticket)
        return True
