"""The managers' figures on a small dataset whose expected values are worked out by hand."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database, migrate
from bot.db.models import Ticket, TicketEvent, User
from bot.domain.hours import SupportHours
from bot.domain.tickets import CloseReason, Kind, Priority, Status
from bot.services.reports import ProblemFigures, Reports, Summary, percentile
from bot.views.reports import chart_png, export_csv, summary_text

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
HOURS = SupportHours.parse("09:00-21:00", MSK)
DAY = date(2026, 11, 10)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK)


def ticket(
    n: int, created: datetime, kind: Kind, prio: Priority, status: Status, **kw: Any
) -> Ticket:
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


def event(
    n: int, when: datetime, kind: str, new: str | None = None, old: str | None = None
) -> TicketEvent:
    return TicketEvent(
        ticket_number=n, at=when, actor_id=None, actor_role="system", type=kind, old=old, new=new
    )


def users() -> list[User]:
    return [
        User(id=1, first_name="Cust", created_at=at(1, 0), updated_at=at(1, 0)),
        User(id=7, first_name="Anna", created_at=at(1, 0), updated_at=at(1, 0)),
    ]


@pytest.fixture
async def session(backend_url: str) -> AsyncIterator[AsyncSession]:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    async with database.writer() as s:
        s.add_all(users())
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


def _rendered(summary: Summary, locale: str) -> str:
    i18n = I18n(path=ROOT / "locales", default_locale="en", domain="messages")
    with i18n.context(), i18n.use_locale(locale):
        return summary_text(summary, locale)


async def test_without_problems_the_summary_has_no_block_of_them(session: AsyncSession) -> None:
    # #2 is of the kind "problem" but nothing is linked to it: not a problem.
    summary = await Reports(HOURS).summary(session, DAY)
    assert summary.problems == ProblemFigures() and not summary.problems.any
    english, russian = _rendered(summary, "en"), _rendered(summary, "ru")
    assert "<b>Problems</b>" not in english and "problem" not in english
    assert "<b>Проблемы</b>" not in russian and "проблем" not in russian


@pytest.fixture
async def problems(backend_url: str) -> AsyncIterator[AsyncSession]:
    """Problems around DAY:

    * #10 opened at 09:00, resolved at 11:00, disputed, resolved again at 12:00 (3 h; counted
      once); #11, #12 (resolved) and #13 (closed) linked to it that day;
    * #40 opened at 20:00 the day before, #41 linked to it then, resolved at 10:00 (1 h + 1 h);
    * #20 in progress: #14 linked that day, #16 linked and closed; #15 unlinked from it;
    * #30, with #31, resolved and closed days before: not in the day's figures, nor open.
    """
    url = backend_url
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    i, p, resolved, closed = Kind.INCIDENT, Priority.P2, Status.RESOLVED, Status.CLOSED
    async with database.writer() as s:
        s.add_all(users())
        s.add_all(
            [
                ticket(10, at(10, 9), Kind.PROBLEM, Priority.P1, resolved, resolved_at=at(10, 12)),
                ticket(20, at(10, 10), Kind.PROBLEM, Priority.P1, Status.IN_PROGRESS),
                ticket(30, at(5, 10), Kind.PROBLEM, Priority.P1, closed, closed_at=at(6, 12)),
                ticket(40, at(9, 20), Kind.PROBLEM, Priority.P1, resolved, resolved_at=at(10, 10)),
                ticket(15, at(10, 9, 10), i, p, resolved, resolved_at=at(10, 14)),
            ]
        )
        await s.flush()
        s.add_all(
            [
                ticket(11, at(10, 9, 5), i, p, resolved, problem_number=10),
                ticket(12, at(10, 9, 6), i, p, resolved, problem_number=10),
                ticket(13, at(10, 9, 7), i, p, closed, problem_number=10, closed_at=at(10, 13)),
                ticket(14, at(10, 10, 5), i, p, Status.NEW, problem_number=20),
                ticket(16, at(8, 10), i, p, closed, problem_number=20, closed_at=at(9, 10)),
                ticket(31, at(5, 10, 5), i, p, closed, problem_number=30, closed_at=at(6, 12)),
                ticket(41, at(9, 20, 10), i, p, resolved, problem_number=40),
            ]
        )
        await s.flush()
        s.add_all(
            [
                *(event(n, at(10, 9, 30), "problem", "10") for n in (11, 12, 13)),
                event(14, at(10, 10, 30), "problem", "20"),
                event(15, at(10, 11), "problem", None, old="20"),  # an unlink: not a link
                event(41, at(9, 20, 30), "problem", "40"),  # the day before
                event(10, at(10, 11), "status", "resolved"),
                event(10, at(10, 11, 30), "dispute"),
                event(10, at(10, 12), "status", "resolved"),
                *(event(n, at(10, 12, 1), "status", "resolved") for n in (11, 12, 13)),
                event(15, at(10, 14), "status", "resolved"),  # no incidents: not a problem
                event(40, at(10, 10), "status", "resolved"),
                event(30, at(6, 11), "status", "resolved"),
            ]
        )
        await s.commit()
        yield s
    await database.dispose()


async def test_the_summary_counts_problems_and_their_incidents(problems: AsyncSession) -> None:
    summary = await Reports(HOURS).summary(problems, DAY)
    assert summary.problems == ProblemFigures(
        linked=4,  # #11, #12, #13 to #10 and #14 to #20
        linked_to=2,
        resolved=2,  # #10 (3 h, however often resolved) and #40 (2 h in support hours)
        resolved_incidents=4,
        resolution_median=timedelta(hours=2, minutes=30),
        resolution_p90=timedelta(hours=3),
        open=3,  # #10 and #40 are resolved, not closed: still open, like #20
        open_incidents=4,  # #11, #12, #41, #14
    )
    assert summary.resolved == 7  # every resolution is still counted among all tickets'

    the_day_before = await Reports(HOURS).summary(problems, DAY - timedelta(days=1))
    assert (the_day_before.problems.linked, the_day_before.problems.resolved) == (1, 0)


async def test_the_summary_shows_its_block_of_problems(problems: AsyncSession) -> None:
    summary = await Reports(HOURS).summary(problems, DAY)
    english = _rendered(summary, "en")
    block = english[english.index("<b>Problems</b>") :].splitlines()
    assert block == [
        "<b>Problems</b>",
        "Linked that day: 4 requests, problems: 2",
        "Resolved: 2 problems, linked requests: 4",
        "Problem resolution (support hours): median 2 hours, 90% within 3 hours",
        "Open now: 3 problems; open requests linked to them: 4",
    ]
    russian = _rendered(summary, "ru")
    assert "Решены 2 проблемы, привязанных обращений: 4" in russian
    assert "Открыты сейчас 3 проблемы, открытых привязанных обращений: 4" in russian

    # A line with nothing to say is left out: one problem, nothing linked, nothing resolved.
    summary.problems = ProblemFigures(open=1, open_incidents=1)
    english = _rendered(summary, "en")
    assert english.endswith("<b>Problems</b>\nOpen now: 1 problem; open requests linked to it: 1")


async def test_the_export_names_the_problem_and_counts_its_incidents(
    problems: AsyncSession,
) -> None:
    rows_out = await Reports(HOURS).export_rows(problems, date(2026, 11, 1), DAY)
    assert [(r.number, r.problem, r.linked_incidents) for r in rows_out] == [
        (10, None, 3),
        (11, 10, 0),
        (12, 10, 0),
        (13, 10, 0),
        (14, 20, 0),
        (15, None, 0),
        (16, 20, 0),
        (20, None, 2),
        (30, None, 1),
        (31, 30, 0),
        (40, None, 1),
        (41, 40, 0),
    ]
    data = export_csv(rows_out, header=[f"c{n}" for n in range(17)], tz=MSK)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert all(len(row) == 17 for row in rows)
    assert [(r[0], r[-2], r[-1]) for r in rows[1:4]] == [
        ("10", "", "3"),
        ("11", "10", "0"),
        ("12", "10", "0"),
    ]
