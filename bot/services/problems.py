"""Problems and their incidents (SPEC §13): staff link many customers' tickets about one cause
to a problem ticket, tell all of those customers at once, and resolve them together — each
customer still confirming or disputing their own ticket.

The rules of linking are in ``bot/domain/problems.py``; this applies them to stored tickets,
writes every link and unlink in the history of both tickets, and sends what follows through
the outbox: the customer's word that it is a known problem (once per ticket), the cards, and
the answers — to customers' own chats at the private pace, never costing the staff group's
budget a message per customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from aiogram import methods
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Ticket, User, is_mail_customer
from bot.db.repositories import DialogRepo, EventRepo, ProblemRepo, TicketRepo
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs
from bot.delivery.outbox import Outbox
from bot.domain.problems import Linkable, LinkRefused, refusal
from bot.domain.tickets import Status, is_open
from bot.services.cards import Cards
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.notices_problems import (
    Broadcast,
    BroadcastOffer,
    IncidentDisputed,
    KnownProblem,
    LinkReport,
    ResolveAllOffer,
    ResolvedAll,
    Unlinked,
)
from bot.services.outgoing import TicketTags, copy_answer, tell_customer, to_customer
from bot.services.rendering import Renderer
from bot.services.resolution import ResolutionService

# What an offer under a problem's answer keeps until it is pressed: the answer's content, for
# customers who write by e-mail (a mail cannot copy a Telegram message).
OFFER_KEY = "problem_offer:"
OFFER_MEMORY = timedelta(days=30)
# Incidents that a problem's answer can still reach: everything but closed.
REACHABLE = (Status.NEW, Status.IN_PROGRESS, Status.WAITING_CUSTOMER, Status.RESOLVED)
# Incidents that resolving the problem resolves with it.
UNRESOLVED = (Status.NEW, Status.IN_PROGRESS, Status.WAITING_CUSTOMER)
# The card's Link menu: how many problems it offers.
MENU_SIZE = 6


class ProblemService:
    def __init__(
        self,
        *,
        clock: Clock,
        outbox: Outbox,
        config: DeskConfig,
        cards: Cards,
        render: Renderer,
        resolution: ResolutionService,
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.cards = cards
        self.render = render
        self.resolution = resolution

    # -- linking -------------------------------------------------------------------------------

    async def link(
        self, session: AsyncSession, problem_number: int, numbers: Sequence[int], actor: User
    ) -> LinkReport:
        """Link the tickets ``numbers`` to the problem ``problem_number``, each as far as the
        rules allow; the report says what happened to each."""
        repo = ProblemRepo(session)
        tickets = await repo.lock([problem_number, *numbers])
        problem = tickets.get(problem_number)
        if problem is None:
            raise Refusal(_("There is no request #{number}."), number=problem_number)
        counts = await repo.incident_counts(tickets)
        target = _linkable(problem, counts)
        linked: list[int] = []
        moved: list[tuple[int, int]] = []
        refused: list[tuple[int, LinkRefused]] = []
        missing: list[int] = []
        now = self.clock.now()
        events = EventRepo(session)
        for number in numbers:
            ticket = tickets.get(number)
            if ticket is None:
                missing.append(number)
                continue
            why = refusal(_linkable(ticket, counts), target)
            if why is not None:
                refused.append((number, why))
                continue
            before = ticket.problem_number
            ticket.problem_number = problem.number
            ticket.updated_at = now
            events.record(
                number,
                at=now,
                type="problem",
                actor_id=actor.id,
                actor_role="staff",
                old=str(before) if before is not None else None,
                new=str(problem.number),
            )
            if before is None:
                linked.append(number)
            else:
                moved.append((number, before))
                events.record(
                    before,
                    at=now,
                    type="incident_unlinked",
                    actor_id=actor.id,
                    actor_role="staff",
                    new=str(number),
                )
            if ticket.problem_told_at is None and ticket.customer_id != problem.customer_id:
                ticket.problem_told_at = now
                await tell_customer(
                    self.outbox, self.render, session, ticket, KnownProblem(ticket.number)
                )
            # The card says which problem; its topic's name does not change.
            await self.cards.refresh(session, ticket, title=False)
        changed = [*linked, *(number for number, _ in moved)]
        if changed:
            events.record(
                problem.number,
                at=now,
                type="incidents_linked",
                actor_id=actor.id,
                actor_role="staff",
                new=str(len(changed)),
                details={"numbers": changed},
            )
            await self.cards.refresh(session, problem, title=False)
            for before in sorted({old for _, old in moved}):
                if (old_problem := await TicketRepo(session).get(before)) is not None:
                    await self.cards.refresh(session, old_problem, title=False)
        return LinkReport(
            problem=problem.number,
            linked=tuple(linked),
            moved=tuple(moved),
            refused=tuple(refused),
            missing=tuple(missing),
            problem_of=problem.problem_number,
        )

    async def unlink(self, session: AsyncSession, numbers: Sequence[int], actor: User) -> Unlinked:
        tickets = await ProblemRepo(session).lock(numbers)
        unlinked: list[tuple[int, int]] = []
        not_linked: list[int] = []
        for number in numbers:
            ticket = tickets.get(number)
            if ticket is None or ticket.problem_number is None:
                not_linked.append(number)
                continue
            unlinked.append((number, ticket.problem_number))
            await self.detach(session, ticket, actor_id=actor.id, role="staff")
        return Unlinked(tuple(unlinked), tuple(not_linked))

    async def detach(
        self, session: AsyncSession, ticket: Ticket, *, actor_id: int | None, role: str
    ) -> None:
        """Take ``ticket`` out of its problem (staff's /unlink, or the customer's dispute of
        the shared answer: their case is then their own)."""
        problem = ticket.problem_number
        if problem is None:
            return
        now = self.clock.now()
        ticket.problem_number = None
        ticket.updated_at = now
        events = EventRepo(session)
        events.record(
            ticket.number,
            at=now,
            type="problem",
            actor_id=actor_id,
            actor_role=role,
            old=str(problem),
            new=None,
        )
        events.record(
            problem,
            at=now,
            type="incident_unlinked",
            actor_id=actor_id,
            actor_role=role,
            new=str(ticket.number),
        )
        await self.cards.refresh(session, ticket, title=False)
        if (problem_ticket := await TicketRepo(session).get(problem)) is not None:
            await self.cards.refresh(session, problem_ticket, title=False)

    async def disputed(self, session: AsyncSession, ticket: Ticket, reason: str) -> None:
        """The customer disputed the answer: the incident leaves its problem (SPEC §13), and
        whoever works on the problem hears why — the answer did not fit every case."""
        problem = ticket.problem_number
        if problem is None:
            return
        await self.detach(session, ticket, actor_id=ticket.customer_id, role="customer")
        problem_ticket = await TicketRepo(session).get(problem)
        if problem_ticket is not None:
            rendered = self.render(
                IncidentDisputed(problem, ticket.number, reason), self.config.default_locale
            )
            self.cards.post_to_ticket(session, problem_ticket, rendered.text)

    async def link_burst(
        self, session: AsyncSession, numbers: Sequence[int], actor: User
    ) -> LinkReport:
        """One press under a burst digest: the oldest open request of it becomes the problem
        and the others are linked to it. (Every ticket of the desk is some customer's request,
        so the problem is one of theirs: its customer confirms it like any other.)"""
        tickets = await TicketRepo(session).get_many(sorted(set(numbers)))
        candidates = [t for t in tickets if is_open(t.status) and t.problem_number is None]
        if len(candidates) < 2:
            raise Refusal(_("Fewer than two of these requests are open: nothing to link."))
        problem = min(candidates, key=lambda t: t.number)
        # Requests staff linked to a problem meanwhile stay where they were put.
        others = [
            t.number for t in tickets if t.number != problem.number and t.problem_number is None
        ]
        return await self.link(session, problem.number, others, actor)

    async def candidates(self, session: AsyncSession, number: int) -> list[tuple[int, str, int]]:
        """The card's Link menu: problems ``number`` could be linked to (number, topic, how
        many incidents), the likeliest first."""
        rows = await ProblemRepo(session).candidates(number, limit=MENU_SIZE)
        counts = await ProblemRepo(session).incident_counts(t.number for t in rows)
        return [(t.number, t.topic, counts.get(t.number, (0, 0))[0]) for t in rows]

    # -- one answer to all ---------------------------------------------------------------------

    async def offer_broadcast(
        self,
        session: AsyncSession,
        problem: Ticket,
        message_id: int,
        content: dict[str, Any] | None,
        locale: str,
    ) -> None:
        """A staff answer in a problem's topic: offer, under it, to send it to every linked
        customer (in ``locale``, the writer's)."""
        reachable = await ProblemRepo(session).incidents(problem.number, statuses=REACHABLE)
        if not reachable:
            return
        await self._keep_offer(session, problem.number, message_id, content)
        notice = BroadcastOffer(problem.number, message_id, len(reachable))
        self._offer(session, problem, notice, locale, reply_to=message_id)

    async def broadcast(
        self,
        session: AsyncSession,
        problem_number: int,
        actor: User,
        message_id: int | None = None,
        *,
        text: str | None = None,
        content: dict[str, Any] | None = None,
    ) -> Broadcast:
        """Send a staff message (``message_id``, copied) or ``text`` to the customer of every
        linked incident that is not closed, as an answer on their own ticket, recorded in its
        history. Each message once: a second press is refused."""
        problem = await TicketRepo(session).get(problem_number, for_update=True)
        if problem is None:
            raise Refusal(_("There is no request #{number}."), number=problem_number)
        events = EventRepo(session)
        if message_id is not None:
            for event in await events.for_ticket(problem.number):
                sent = (event.details or {}).get("message_id")
                if event.type == "broadcast" and sent == message_id:
                    raise Refusal(_("This answer was sent to the linked customers already."))
            if content is None:
                content = await self._offered(session, problem.number, message_id)
        incidents = await ProblemRepo(session).incidents(problem.number, statuses=REACHABLE)
        if not incidents:
            raise Refusal(
                _("No open request is linked to #{number}: nobody to tell."),
                number=problem.number,
            )
        now = self.clock.now()
        for incident in incidents:
            details: dict[str, Any] = {"problem": problem.number}
            if message_id is not None:
                details["message_id"] = message_id
                copy_answer(
                    self.outbox,
                    session,
                    incident,
                    from_chat_id=self.config.staff_chat_id,
                    message_id=message_id,
                    content=content if is_mail_customer(incident.customer_id) else None,
                    shared=True,
                )
            else:
                assert text is not None
                details["text"] = text[:4000]
                to_customer(self.outbox, session, incident, text, purpose="answer")
            events.record(
                incident.number,
                at=now,
                type="staff_message",
                actor_id=actor.id,
                actor_role="staff",
                details=details,
            )
            if incident.first_response_at is None:
                # An answer on their ticket: the first response is made. (The card is not
                # redrawn for it: a burst's worth of card edits would hold up the group.)
                incident.first_response_at = now
            incident.updated_at = now
        events.record(
            problem.number,
            at=now,
            type="broadcast",
            actor_id=actor.id,
            actor_role="staff",
            new=str(len(incidents)),
            details={"message_id": message_id} if message_id is not None else {"text": text},
        )
        return Broadcast(problem.number, len(incidents))

    # -- resolving together --------------------------------------------------------------------

    async def offer_resolve_all(
        self,
        session: AsyncSession,
        problem: Ticket,
        message_id: int | None,
        content: dict[str, Any] | None,
        locale: str,
    ) -> None:
        """The problem was resolved: offer to resolve its open incidents with the same answer."""
        open_ = await ProblemRepo(session).incidents(problem.number, statuses=UNRESOLVED)
        if not open_:
            return
        if message_id is None:
            message_id = await EventRepo(session).last_staff_message(problem.number)
        if message_id is None:
            return
        await self._keep_offer(session, problem.number, message_id, content, resolve=True)
        self._offer(session, problem, ResolveAllOffer(problem.number, len(open_)), locale)

    async def resolve_all(
        self, session: AsyncSession, problem_number: int, actor: User
    ) -> ResolvedAll:
        """Resolve every open incident of a resolved problem with the problem's answer: each
        customer gets it with Solved / Not solved, as on any ticket."""
        problem = await TicketRepo(session).get(problem_number, for_update=True)
        if problem is None:
            raise Refusal(_("There is no request #{number}."), number=problem_number)
        if problem.status not in (Status.RESOLVED, Status.CLOSED):
            raise Refusal(
                _("#{number} is {status}: resolve it first."),
                number=problem.number,
                status=problem.status,
            )
        offer = await DialogRepo(session).get(f"{OFFER_KEY}{problem.number}:resolve")
        data: dict[str, Any] = dict(offer.data) if offer is not None else {}
        message_id = data.get("message_id")
        if message_id is None:
            message_id = await EventRepo(session).last_staff_message(problem.number)
        repo = ProblemRepo(session)
        unresolved = await repo.incidents(problem.number, statuses=UNRESOLVED)
        locked = await repo.lock(t.number for t in unresolved)
        incidents = [
            t
            for t in locked.values()
            if t.status in UNRESOLVED and t.problem_number == problem.number
        ]
        if not incidents:
            raise Refusal(
                _("No open request linked to #{number} is left to resolve."), number=problem.number
            )
        answer = int(message_id) if message_id is not None else None
        for incident in incidents:
            # An answer its customer has had already (told to all linked customers before) is
            # not sent again: only the question goes, as resolving with the last answer does.
            fresh = answer
            if answer is not None and await _had(session, incident, answer):
                fresh = None
            await self.resolution.resolve(
                session,
                incident,
                actor,
                fresh,
                data.get("content") if fresh is not None else None,
                problem=problem.number,
            )
        EventRepo(session).record(
            problem.number,
            at=self.clock.now(),
            type="resolved_all",
            actor_id=actor.id,
            actor_role="staff",
            new=str(len(incidents)),
        )
        return ResolvedAll(problem.number, len(incidents))

    # -- offers --------------------------------------------------------------------------------

    async def _keep_offer(
        self,
        session: AsyncSession,
        problem: int,
        message_id: int,
        content: dict[str, Any] | None,
        *,
        resolve: bool = False,
    ) -> None:
        states = DialogRepo(session)
        now = self.clock.now()
        await states.forget_before(OFFER_KEY, now - OFFER_MEMORY)
        key = f"{OFFER_KEY}{problem}:{'resolve' if resolve else message_id}"
        data = {"message_id": message_id, "content": content}
        await states.put(key, state=None, data=data, now=now)

    async def _offered(
        self, session: AsyncSession, problem: int, message_id: int
    ) -> dict[str, Any] | None:
        offer = await DialogRepo(session).get(f"{OFFER_KEY}{problem}:{message_id}")
        return (offer.data or {}).get("content") if offer is not None else None

    def _offer(
        self,
        session: AsyncSession,
        problem: Ticket,
        notice: object,
        locale: str,
        *,
        reply_to: int | None = None,
    ) -> None:
        """An offer with its button, in the problem's topic (or under its card): ahead of the
        ticket's other staff-side messages, since the writer waits for it."""
        rendered = self.render(notice, locale)
        staff = self.config.staff_chat_id
        payload: dict[str, Any] = {"chat_id": staff, "text": rendered.text}
        if rendered.reply_markup is not None:
            payload["reply_markup"] = rendered.reply_markup
        if reply_to is not None:
            payload["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        self.outbox.add(
            session,
            Intent(
                chat_id=staff,
                method=methods.SendMessage,
                payload=payload,
                purpose="staff_note",
                subject=problem.number,
                rank=RANK_CUSTOMER_WAITING,
                refs=Refs(party=problem.customer_id),
                tags=TicketTags(reply_to_card=reply_to is None),
            ),
        )


async def _had(session: AsyncSession, ticket: Ticket, message_id: int) -> bool:
    """Whether the staff message ``message_id`` was sent to the ticket's customer already."""
    return any(
        event.type == "staff_message" and (event.details or {}).get("message_id") == message_id
        for event in await EventRepo(session).for_ticket(ticket.number)
    )


def _linkable(ticket: Ticket, counts: dict[int, tuple[int, int]]) -> Linkable:
    return Linkable(
        number=ticket.number,
        status=ticket.status,
        problem=ticket.problem_number,
        incidents=counts.get(ticket.number, (0, 0))[0],
    )
