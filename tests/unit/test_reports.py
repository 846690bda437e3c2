"""The managers' figures on a small dataset whose expected values are worked out by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database, migrate
from bot.db.models import Ticket, TicketEvent, User
from bot.domain.hours import SupportHours
from bot.domain.tickets import CloseReason, Kind, Priority, Status
from bot.services.reports import Reports, percentile
from bot.views.reports import chart_png, export_csv

MSK = ZoneInfo("Europe/Moscow")
HOURS = SupportHours.parse("09:00-21:00", MSK)
DAY = date(2026, 11, 10)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK)


@pytest.fixture
async def session(backend_url: str) -> AsyncIterator[AsyncSession]:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    async with database.writer() as s:
        s.add_all(
            [
                User(id=1, first_name="Cust", created_at=at(1, 0), updated_at=at(1, 0)),
                User(id=7, first_name="Anna", created_at=at(1, 0), updated_at=at(1, 0)),
            ]
        )

        def ticket(n: int, created: datetime, kind: Kind, prio: Priority, status: Status, **kw):  # type: ignore[no-untyped-def]
            return Ticket(
                number=n,
                intake_key=f"k{n}",
                customer_id=1,
                account_number="1234",
                topic=f"t{n}",
                kind=kind,
                description="d" * 10,
                priority=prio,
                status=status,
                line=1,
                locale="en",
                created_at=created,
                updated_at=created,
                reopened_count=0,
                **kw,
            )

        s.add_all(
            [
                ticket(
                    1,
                    at(10, 10),
                    Kind.INCIDENT,
                    Priority.P2,
                    Status.CLOSED,
                    assignee_id=7,
                    first_response_at=at(10, 10, 30),
                    resolved_at=at(10, 12),
                    closed_at=at(10, 13),
                    close_reason=CloseReason.CONFIRMED,
                    rating=5,
                ),
                ticket(
                    2,
                    at(10, 20, 30),
                    Kind.PROBLEM,
                    Priority.P1,
                    Status.IN_PROGRESS,
                    assignee_id=7,
                    first_response_at=at(10, 20, 50),
                ),
                ticket(
                    3,
                    at(9, 20),
                    Kind.SERVICE,
                    Priority.P3,
                    Status.CLOSED,
                    first_response_at=at(10, 9, 30),
                    resolved_at=at(10, 10),
                    closed_at=at(10, 15),
                    close_reason=CloseReason.AUTO,
                    rating=2,
                    sla_breached_at=at(10, 9, 5),
                ),
                ticket(4, at(5, 12), Kind.DEVELOPMENT, Priority.P4, Status.NEW),
            ]
        )
        await s.flush()

        def event(n: int, when: datetime, kind: str, new: str | None = None) -> TicketEvent:
            return TicketEvent(
                ticket_number=n, at=when, actor_id=None, actor_role="system", type=kind, new=new
            )

        s.add_all(
            [
                event(1, at(10, 12), "status", "resolved"),
                event(3, at(10, 10), "status", "resolved"),
                event(1, at(10, 13, 5), "rating", "5"),
                event(3, at(10, 15, 5), "rating", "2"),
                event(2, at(10, 20, 55), "dispute"),
                event(4, at(9, 12), "status", "resolved"),  # another day: not counted
            ]
        )
        await s.commit()
        yield s
    await database.dispose()


async def test_the_summary_of_a_day(session: AsyncSession) -> None:
    summary = await Reports(HOURS).summary(session, DAY)
    assert summary.opened == 2
    assert summary.opened_by_kind == {Kind.INCIDENT: 1, Kind.PROBLEM: 1}
    assert summary.opened_by_priority == {Priority.P2: 1, Priority.P1: 1}
    assert summary.first_responded == 3
    # 30 min, 20 min, and 20:00-21:00 + 09:00-09:30 = 90 min in support hours.
    assert summary.first_response_median == timedelta(minutes=30)
    assert summary.first_response_p90 == timedelta(minutes=90)
    assert summary.resolved == 2  # #1 in 2 h; #3: 1 h on the 9th + 1 h on the 10th
    assert summary.resolution_median == timedelta(hours=2)
    assert summary.resolution_p90 == timedelta(hours=2)
    assert summary.closed == {CloseReason.CONFIRMED: 1, CloseReason.AUTO: 1}
    assert summary.reopened == 1
    assert summary.backlog == {Priority.P1: 1, Priority.P4: 1}
    assert summary.backlog_age == {"<1d": 1, "1-3d": 0, ">3d": 1}
    assert summary.sla_breaches == 1
    assert summary.ratings == 2 and summary.rating_average == 3.5 and summary.low_ratings == 1
    assert [(a.name, a.resolved, a.open) for a in summary.assignees] == [("Anna", 1, 1)]


async def test_the_edges_of_the_day_are_in_the_service_time_zone(session: AsyncSession) -> None:
    # #2 was opened at 20:30 Moscow time on the 10th: that is the 10th, not the 11th in UTC terms.
    assert (await Reports(HOURS).summary(session, date(2026, 11, 11))).opened == 0
    assert (await Reports(HOURS).summary(session, date(2026, 11, 9))).opened == 1  # #3


async def test_chart_has_a_point_per_day_and_is_a_png(session: AsyncSession) -> None:
    points = await Reports(HOURS).history(session, DAY)
    assert len(points) == 14 and points[-1].day == DAY
    assert (points[-1].opened, points[-1].closed, points[-1].backlog) == (2, 2, 2)
    png = chart_png(points, title="t", labels=("o", "c", "b"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


async def test_export_round_trip(session: AsyncSession) -> None:
    import csv
    import io

    rows_out = await Reports(HOURS).export_rows(session, date(2026, 11, 9), DAY)
    data = export_csv(rows_out, header=["№", "Создано"] + ["x"] * 12, tz=MSK)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:2] == ["№", "Создано"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    assert rows[1][1] == "2026-11-10 10:00" and rows[1][8] == "confirmed" and rows[1][9] == "Anna"
    assert rows[3][11] == "90"  # first response of #3 in support minutes


def test_percentile_is_nearest_rank() -> None:
    values = [timedelta(minutes=m) for m in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
    assert percentile(values, 0.9) == timedelta(minutes=9)
    assert percentile([], 0.9) is None
