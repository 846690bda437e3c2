"""Managers' figures (SPEC §6): the daily summary, its chart's data, and the export's rows.

Counts come from SQL aggregates over indexed columns. Durations in support hours need the
calendar of support hours, so they are computed in Python — but only for the tickets of that
one day (those answered or resolved that day), never for the whole table.

Everything here is data: the summary's text, the chart and the CSV are drawn at the edge.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.db.models import Ticket, TicketEvent, User
from bot.domain.hours import SupportHours
from bot.domain.tariffs import Tariff, Tariffs
from bot.domain.tickets import OPEN_STATUSES, CloseReason, Kind, Priority, Status

# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"): a cell that
# starts with one of these is written with a leading apostrophe, which shows it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A cell of the export: text from people (topics, names) is never run as a formula;
    numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@dataclass(slots=True)
class AssigneeLine:
    name: str
    resolved: int
    open: int


@dataclass(slots=True)
class ProblemFigures:
    """Problems and their incidents in a day's summary (SPEC §13). A problem is a ticket with
    at least one incident linked to it; "open" is "not closed", as on the problem's card."""

    linked: int = 0  # links made that day (a move to another problem counts too)
    linked_to: int = 0  # the problems those links went to
    resolved: int = 0  # problems resolved that day, each once however often
    resolved_incidents: int = 0  # the incidents linked to those problems
    resolution_median: timedelta | None = None  # the problem's opening → its resolution
    resolution_p90: timedelta | None = None
    open: int = 0  # problems not closed now
    open_incidents: int = 0  # their incidents not closed now

    @property
    def any(self) -> bool:
        """Anything to say: without it the summary has no block of problems."""
        return bool(self.linked or self.resolved or self.open)


@dataclass(slots=True)
class TariffFigures:
    """A day's figures of one tariff (SPEC §12); durations in that tariff's support hours."""

    tariff: Tariff
    opened: int = 0
    first_responded: int = 0
    first_response_median: timedelta | None = None
    sla_breaches: int = 0
    resolved: int = 0
    resolution_late: int = 0  # resolved later than the tariff's resolution target
    backlog: int = 0  # open at the end of the day


@dataclass(slots=True)
class Summary:
    day: date
    opened: int = 0
    opened_by_kind: dict[Kind, int] = field(default_factory=dict)
    opened_by_priority: dict[Priority, int] = field(default_factory=dict)
    first_responded: int = 0
    resolved: int = 0
    closed: dict[CloseReason, int] = field(default_factory=dict)
    reopened: int = 0
    backlog: dict[Priority, int] = field(default_factory=dict)
    backlog_age: dict[str, int] = field(default_factory=dict)  # "<1d", "1-3d", ">3d"
    first_response_median: timedelta | None = None
    first_response_p90: timedelta | None = None
    resolution_median: timedelta | None = None
    resolution_p90: timedelta | None = None
    sla_breaches: int = 0
    assignees: list[AssigneeLine] = field(default_factory=list)
    rating_average: float | None = None
    ratings: int = 0
    low_ratings: int = 0
    problems: ProblemFigures = field(default_factory=ProblemFigures)
    # By tariff, when the desk sells tariffs (TARIFFS_FILE), in the file's order.
    by_tariff: list[TariffFigures] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: date
    opened: int
    closed: int
    backlog: int


@dataclass(frozen=True, slots=True)
class DayReport:
    """A day's summary and the 14 days up to it that its chart shows."""

    summary: Summary
    points: Sequence[DayPoint]

    @property
    def day(self) -> date:
        return self.summary.day


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One ticket of the export; durations in minutes of support hours."""

    number: int
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    kind: Kind
    priority: Priority
    status: Status
    close_reason: CloseReason | None
    assignee: str
    line: int
    first_response_minutes: int | None
    resolution_minutes: int | None
    rating: int | None
    topic: str
    problem: int | None  # the problem this ticket is an incident of
    linked_incidents: int  # for a problem, the tickets linked to it
    tariff: str = ""  # the code of the tariff it was registered under


def percentile(values: Sequence[timedelta], share: float) -> timedelta | None:
    """Nearest-rank percentile (0 < share <= 1)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil
    return ordered[int(rank) - 1]


def median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    seconds = statistics.median(v.total_seconds() for v in values)
    return timedelta(seconds=seconds)


class Reports:
    def __init__(self, hours: SupportHours, tariffs: Tariffs | None = None) -> None:
        self.hours = hours
        self.tariffs = tariffs  # None: every ticket in ``hours``

    def _hours(self, tariff: str | None, kind: Kind) -> SupportHours:
        """The support hours a ticket's durations count in: its tariff's (SPEC §12)."""
        return self.hours if self.tariffs is None else self.tariffs.terms(tariff, kind).hours

    def _tariff_code(self, tariff: str | None) -> str:
        """For the export: empty while the desk sells no tariffs."""
        if self.tariffs is None or not self.tariffs.from_file:
            return ""
        return self.tariffs.get(tariff).code

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, time(0), self.hours.tz)
        return start, datetime.combine(day + timedelta(days=1), time(0), self.hours.tz)

    async def summary(self, session: AsyncSession, day: date) -> Summary:
        start, end = self.day_bounds(day)
        result = Summary(day=day)
        in_day = and_(Ticket.created_at >= start, Ticket.created_at < end)

        rows = await session.execute(
            select(Ticket.kind, Ticket.priority, func.count())
            .where(in_day)
            .group_by(Ticket.kind, Ticket.priority)
        )
        for kind, priority, count in rows.all():
            kind, priority = Kind(kind), Priority(priority)
            result.opened += count
            result.opened_by_kind[kind] = result.opened_by_kind.get(kind, 0) + count
            result.opened_by_priority[priority] = result.opened_by_priority.get(priority, 0) + count

        answered = await session.execute(
            select(Ticket.created_at, Ticket.first_response_at, Ticket.tariff, Ticket.kind).where(
                Ticket.first_response_at >= start, Ticket.first_response_at < end
            )
        )
        first_by_tariff: list[tuple[str, timedelta]] = [
            (self._tariff_code(tariff), self._hours(tariff, Kind(kind)).working_time_between(a, b))
            for a, b, tariff, kind in answered.all()
            if b is not None
        ]
        first = [spent for _code, spent in first_by_tariff]
        result.first_responded = len(first)
        result.first_response_median = median(first)
        result.first_response_p90 = percentile(first, 0.9)

        resolved = await session.execute(
            select(Ticket.created_at, TicketEvent.at, Ticket.tariff, Ticket.kind, Ticket.priority)
            .join(Ticket, Ticket.number == TicketEvent.ticket_number)
            .where(
                TicketEvent.type == "status",
                TicketEvent.new == Status.RESOLVED.value,
                TicketEvent.at >= start,
                TicketEvent.at < end,
            )
        )
        resolved_by_tariff: list[tuple[str | None, Kind, Priority, timedelta]] = [
            (
                tariff,
                Kind(kind),
                Priority(priority),
                self._hours(tariff, Kind(kind)).working_time_between(a, b),
            )
            for a, b, tariff, kind, priority in resolved.all()
        ]
        durations = [spent for *_rest, spent in resolved_by_tariff]
        result.resolved = len(durations)
        result.resolution_median = median(durations)
        result.resolution_p90 = percentile(durations, 0.9)

        closed = await session.execute(
            select(Ticket.close_reason, func.count())
            .where(Ticket.closed_at >= start, Ticket.closed_at < end)
            .group_by(Ticket.close_reason)
        )
        result.closed = {CloseReason(r): n for r, n in closed.all() if r is not None}

        result.reopened = await self._count_events(session, "dispute", start, end)
        result.sla_breaches = int(
            (
                await session.execute(
                    select(func.count()).where(
                        Ticket.sla_breached_at >= start, Ticket.sla_breached_at < end
                    )
                )
            ).scalar_one()
        )

        # Backlog at the end of the day: opened by then and not closed by then.
        open_then = and_(
            Ticket.created_at < end,
            (Ticket.closed_at.is_(None)) | (Ticket.closed_at >= end),
        )
        backlog = await session.execute(
            select(
                Ticket.priority,
                func.count(),
                func.sum(case((Ticket.created_at >= end - timedelta(days=1), 1), else_=0)),
                func.sum(
                    case(
                        (
                            and_(
                                Ticket.created_at < end - timedelta(days=1),
                                Ticket.created_at >= end - timedelta(days=3),
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
            )
            .where(open_then)
            .group_by(Ticket.priority)
        )
        ages = {"<1d": 0, "1-3d": 0, ">3d": 0}
        for priority, count, young, middle in backlog.all():
            result.backlog[Priority(priority)] = count
            ages["<1d"] += int(young or 0)
            ages["1-3d"] += int(middle or 0)
            ages[">3d"] += count - int(young or 0) - int(middle or 0)
        result.backlog_age = ages

        assignee = aliased(User)
        per_assignee = await session.execute(
            select(
                assignee.first_name,
                assignee.last_name,
                func.sum(
                    case((and_(Ticket.resolved_at >= start, Ticket.resolved_at < end), 1), else_=0)
                ),
                func.sum(case((Ticket.status.in_([s.value for s in OPEN_STATUSES]), 1), else_=0)),
            )
            .join(assignee, assignee.id == Ticket.assignee_id)
            .where(
                (Ticket.status.in_([s.value for s in OPEN_STATUSES]))
                | (and_(Ticket.resolved_at >= start, Ticket.resolved_at < end))
            )
            .group_by(assignee.id, assignee.first_name, assignee.last_name)
            .order_by(assignee.first_name)
        )
        result.assignees = [
            AssigneeLine(" ".join(filter(None, (first, last))), int(done or 0), int(still or 0))
            for first, last, done, still in per_assignee.all()
        ]

        ratings = await session.execute(
            select(
                func.count(),
                func.avg(func.cast(TicketEvent.new, Ticket.rating.type)),
                func.sum(case((func.cast(TicketEvent.new, Ticket.rating.type) <= 2, 1), else_=0)),
            ).where(TicketEvent.type == "rating", TicketEvent.at >= start, TicketEvent.at < end)
        )
        count, average, low = ratings.one()
        result.ratings = int(count or 0)
        result.rating_average = float(average) if count else None
        result.low_ratings = int(low or 0)
        result.problems = await self._problems(session, start, end)
        if self.tariffs is not None and self.tariffs.from_file:
            result.by_tariff = await self._by_tariff(
                session, self.tariffs, start, end, first_by_tariff, resolved_by_tariff
            )
        return result

    async def _by_tariff(
        self,
        session: AsyncSession,
        tariffs: Tariffs,
        start: datetime,
        end: datetime,
        first: Sequence[tuple[str, timedelta]],
        resolved: Sequence[tuple[str | None, Kind, Priority, timedelta]],
    ) -> list[TariffFigures]:
        """The day by tariff: three grouped counts, and the durations already computed."""
        figures = {code: TariffFigures(tariff) for code, tariff in tariffs.by_code.items()}

        def of(code: str | None) -> TariffFigures:
            return figures[tariffs.get(code).code]

        in_day = and_(Ticket.created_at >= start, Ticket.created_at < end)
        for code, count in (
            await session.execute(
                select(Ticket.tariff, func.count()).where(in_day).group_by(Ticket.tariff)
            )
        ).all():
            of(code).opened += int(count)
        breached = and_(Ticket.sla_breached_at >= start, Ticket.sla_breached_at < end)
        for code, count in (
            await session.execute(
                select(Ticket.tariff, func.count()).where(breached).group_by(Ticket.tariff)
            )
        ).all():
            of(code).sla_breaches += int(count)
        open_then = and_(
            Ticket.created_at < end, (Ticket.closed_at.is_(None)) | (Ticket.closed_at >= end)
        )
        for code, count in (
            await session.execute(
                select(Ticket.tariff, func.count()).where(open_then).group_by(Ticket.tariff)
            )
        ).all():
            of(code).backlog += int(count)
        for code in figures:
            answered = [value for tariff, value in first if tariff == code]
            figures[code].first_responded = len(answered)
            figures[code].first_response_median = median(answered)
        for code, kind, priority, took in resolved:
            line = of(code)
            line.resolved += 1
            target = tariffs.terms(code, kind).resolution.get(priority)
            if target is not None and took > target:
                line.resolution_late += 1
        return list(figures.values())

    async def _problems(
        self, session: AsyncSession, start: datetime, end: datetime
    ) -> ProblemFigures:
        """Three indexed queries: the day's "problem" events (``ix_ticket_events_type_at``),
        the day's resolutions joined to their incidents, and the tickets still open joined to
        theirs (both joins on ``ix_tickets_problem``)."""
        figures = ProblemFigures()
        links = await session.execute(
            select(func.count(), func.count(TicketEvent.new.distinct())).where(
                TicketEvent.type == "problem",
                TicketEvent.new.is_not(None),  # None is an unlink
                TicketEvent.at >= start,
                TicketEvent.at < end,
            )
        )
        linked, linked_to = links.one()
        figures.linked, figures.linked_to = int(linked or 0), int(linked_to or 0)

        # A problem resolved twice that day (disputed in between) counts once, to its last
        # resolution; the inner join keeps only tickets with incidents, i.e. problems.
        incident = aliased(Ticket)
        resolved = await session.execute(
            select(
                Ticket.created_at,
                func.max(TicketEvent.at),
                func.count(incident.number.distinct()),
            )
            .join(Ticket, Ticket.number == TicketEvent.ticket_number)
            .join(incident, incident.problem_number == Ticket.number)
            .where(
                TicketEvent.type == "status",
                TicketEvent.new == Status.RESOLVED.value,
                TicketEvent.at >= start,
                TicketEvent.at < end,
            )
            .group_by(Ticket.number, Ticket.created_at)
        )
        durations: list[timedelta] = []
        for created_at, resolved_at, incidents in resolved.all():
            durations.append(self.hours.working_time_between(created_at, resolved_at))
            figures.resolved_incidents += int(incidents)
        figures.resolved = len(durations)
        figures.resolution_median = median(durations)
        figures.resolution_p90 = percentile(durations, 0.9)

        still_open = [s.value for s in OPEN_STATUSES]
        current = await session.execute(
            select(
                func.count(Ticket.number.distinct()),
                func.count().filter(incident.status.in_(still_open)),
            )
            .select_from(Ticket)
            .join(incident, incident.problem_number == Ticket.number)
            .where(Ticket.status.in_(still_open))
        )
        problems, incidents = current.one()
        figures.open, figures.open_incidents = int(problems or 0), int(incidents or 0)
        return figures

    async def _count_events(
        self, session: AsyncSession, kind: str, start: datetime, end: datetime
    ) -> int:
        result = await session.execute(
            select(func.count()).where(
                TicketEvent.type == kind, TicketEvent.at >= start, TicketEvent.at < end
            )
        )
        return int(result.scalar_one())

    async def history(
        self, session: AsyncSession, last_day: date, days: int = 14
    ) -> list[DayPoint]:
        """Opened and closed per day, and the backlog at each day's end — three indexed
        counts a day (opened on ``created_at``, closed on ``closed_at``, the backlog on
        ``(closed_at, created_at)``), so the size of the whole table does not matter."""
        points = []
        for offset in range(days - 1, -1, -1):
            day = last_day - timedelta(days=offset)
            start, end = self.day_bounds(day)
            opened = await self._count(session, Ticket.created_at >= start, Ticket.created_at < end)
            closed = await self._count(session, Ticket.closed_at >= start, Ticket.closed_at < end)
            backlog = await self._count(
                session,
                (Ticket.closed_at.is_(None)) | (Ticket.closed_at >= end),
                Ticket.created_at < end,
            )
            points.append(DayPoint(day, opened, closed, backlog))
        return points

    async def _count(self, session: AsyncSession, *conditions: Any) -> int:
        result = await session.execute(select(func.count()).select_from(Ticket).where(*conditions))
        return int(result.scalar_one())

    async def export_rows(self, session: AsyncSession, first: date, last: date) -> list[ExportRow]:
        """Tickets opened in [first, last] (days in the service's time zone), by number."""
        start, _ = self.day_bounds(first)
        _, end = self.day_bounds(last)
        assignee = aliased(User)
        incident = aliased(Ticket)
        # One probe of ix_tickets_problem per row, inside the same statement.
        linked = (
            select(func.count())
            .select_from(incident)
            .where(incident.problem_number == Ticket.number)
            .correlate(Ticket)
            .scalar_subquery()
        )
        rows = await session.execute(
            select(Ticket, assignee.first_name, assignee.last_name, linked)
            .outerjoin(assignee, assignee.id == Ticket.assignee_id)
            .where(Ticket.created_at >= start, Ticket.created_at < end)
            .order_by(Ticket.number)
        )

        def minutes(ticket: Ticket, b: datetime | None) -> int | None:
            if b is None:
                return None
            hours = self._hours(ticket.tariff, ticket.kind)
            return round(hours.working_time_between(ticket.created_at, b).total_seconds() / 60)

        return [
            ExportRow(
                number=ticket.number,
                created_at=ticket.created_at,
                first_response_at=ticket.first_response_at,
                resolved_at=ticket.resolved_at,
                closed_at=ticket.closed_at,
                kind=ticket.kind,
                priority=ticket.priority,
                status=ticket.status,
                close_reason=ticket.close_reason,
                assignee=" ".join(filter(None, (first_name, last_name))),
                line=ticket.line,
                first_response_minutes=minutes(ticket, ticket.first_response_at),
                resolution_minutes=minutes(ticket, ticket.resolved_at),
                rating=ticket.rating,
                topic=ticket.topic,
                problem=ticket.problem_number,
                linked_incidents=int(incidents),
                tariff=self._tariff_code(ticket.tariff),
            )
            for ticket, first_name, last_name, incidents in rows.all()
        ]
