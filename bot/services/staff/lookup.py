"""Reading the desk for staff: which ticket a message or a topic belongs to, a ticket's history,
the queue of open tickets, search. Results are data; the edges render them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Ticket, User
from bot.db.repositories import (
    EventRepo,
    LinkRepo,
    ProblemRepo,
    StaffDirectory,
    StaffQueries,
    TicketRepo,
    UserRepo,
)
from bot.domain.sla import Sla
from bot.domain.tariffs import Tariff
from bot.domain.tickets import Priority, Status
from bot.services.cards import Cards, display_name
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    at: datetime
    actor: str | None  # None: the desk itself (a timer, the rules)
    type: str
    old: str | None
    new: str | None
    text: str | None = None
    problem: int | None = None  # an answer that came from this problem (SPEC §13)
    numbers: tuple[int, ...] = ()  # the requests an event names (incidents linked)


@dataclass(frozen=True, slots=True)
class TicketHistory:
    number: int
    events: tuple[HistoryEvent, ...]
    tz: ZoneInfo
    # SPEC §13: the problem this request is linked to, and the requests linked to it.
    problem: int | None = None
    incidents: tuple[tuple[int, Status], ...] = ()


@dataclass(frozen=True, slots=True)
class QueueRow:
    number: int
    priority: Priority
    status: Status
    topic: str
    assignee: str | None
    age: timedelta
    sla: Sla | None = None
    tariff: Tariff | None = None  # None: the desk sells no tariffs


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: tuple[QueueRow, ...]
    page: int  # from 0, within the pages there are
    pages: int
    total: int
    tz: ZoneInfo | None = None  # the desk's: when SLAs are due


@dataclass(frozen=True, slots=True)
class FoundTicket:
    number: int
    status: Status
    topic: str


class StaffLookup:
    def __init__(self, *, clock: Clock, config: DeskConfig, cards: Cards) -> None:
        self.clock = clock
        self.config = config
        self.cards = cards

    async def ticket(self, session: AsyncSession, number: int, *, lock: bool = False) -> Ticket:
        ticket = await TicketRepo(session).get(number, for_update=lock)
        if ticket is None:
            raise Refusal(_("There is no request #{number}."), number=number)
        return ticket

    async def ticket_of_staff_message(
        self, session: AsyncSession, message_id: int
    ) -> Ticket | None:
        number = await LinkRepo(session).ticket_of_staff_message(
            self.config.staff_chat_id, message_id
        )
        return await TicketRepo(session).get(number) if number is not None else None

    async def direction_of(self, session: AsyncSession, message_id: int) -> str | None:
        """What a message of the staff group is to the desk (a note, an answer, a card...)."""
        return await LinkRepo(session).direction_of_staff_message(
            self.config.staff_chat_id, message_id
        )

    async def ticket_of_thread(self, session: AsyncSession, thread_id: int) -> Ticket | None:
        number = await LinkRepo(session).ticket_of_thread(self.config.staff_chat_id, thread_id)
        return await TicketRepo(session).get(number) if number is not None else None

    async def history(self, session: AsyncSession, number: int) -> TicketHistory:
        ticket = await self.ticket(session, number)
        users = UserRepo(session)
        names: dict[int, str] = {}
        events = []
        for event in await EventRepo(session).for_ticket(ticket.number):
            if event.actor_id is not None and event.actor_id not in names:
                names[event.actor_id] = display_name(
                    await users.get(event.actor_id), event.actor_id
                )
            events.append(
                HistoryEvent(
                    at=event.at,
                    actor=names[event.actor_id] if event.actor_id is not None else None,
                    type=event.type,
                    old=event.old,
                    new=event.new,
                    text=(event.details or {}).get("text"),
                    problem=(event.details or {}).get("problem"),
                    numbers=tuple((event.details or {}).get("numbers") or ()),
                )
            )
        incidents = await ProblemRepo(session).incidents(ticket.number)
        return TicketHistory(
            ticket.number,
            tuple(events),
            self.config.tz,
            problem=ticket.problem_number,
            incidents=tuple((t.number, t.status) for t in incidents),
        )

    async def queue(self, session: AsyncSession, *, page: int, per_page: int) -> QueuePage:
        """Open tickets by priority, then when their first response is due on their tariff's
        terms (overdue first; answered and paused ones after), then age (SPEC §12)."""
        # The deadline depends on each tariff's hours: the order is made here, not in SQL.
        # (The open tickets of a desk are its backlog: hundreds, not millions.)
        rows = await StaffQueries(session).open_queue(offset=0, limit=None)
        total = len(rows)
        pages = max(1, -(-total // per_page))
        page = min(max(page, 0), pages - 1)
        now = self.clock.now()
        never = datetime.max.replace(tzinfo=now.tzinfo)
        slas = {ticket.number: self.cards.sla(ticket) for ticket, _assignee in rows}
        ordered = sorted(
            rows,
            key=lambda row: (
                row[0].priority,
                slas[row[0].number].due or never,
                row[0].created_at,
                row[0].number,
            ),
        )
        tariffs = self.config.book
        return QueuePage(
            rows=tuple(
                QueueRow(
                    number=ticket.number,
                    priority=ticket.priority,
                    status=ticket.status,
                    topic=ticket.topic,
                    assignee=display_name(assignee) if assignee else None,
                    age=now - ticket.created_at,
                    sla=slas[ticket.number],
                    tariff=tariffs.get(ticket.tariff) if tariffs.from_file else None,
                )
                for ticket, assignee in ordered[page * per_page : (page + 1) * per_page]
            ),
            page=page,
            pages=pages,
            total=total,
            tz=self.config.tz,
        )

    async def find(self, session: AsyncSession, query: str) -> list[FoundTicket]:
        rows = await StaffQueries(session).find(query.strip(), limit=20)
        return [FoundTicket(t.number, t.status, t.topic) for t in rows]

    async def known_staff(self, session: AsyncSession) -> Sequence[User]:
        return await StaffDirectory(session).known()
