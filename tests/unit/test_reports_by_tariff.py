"""The managers' figures by tariff (SPEC §12): each ticket's durations count in its tariff's
hours, and the summary and the export say which tariff a ticket was registered under."""

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
from bot.domain.tariffs import Tariffs, parse_tariffs
from bot.domain.tickets import Kind, Priority, Status
from bot.services.reports import Reports
from bot.views.reports import export_csv, export_header, summary_text

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
HOURS = SupportHours.parse("09:00-21:00", MSK)
DAY = date(2026, 11, 10)
TARIFFS = """
default = "standard"
[tariffs.standard]
name = { ru = "Стандарт", en = "Standard" }
resolution = { P1 = "PT4H", P2 = "PT8H", P3 = "PT30M", P4 = "P5D" }
[tariffs.premium]
name = { ru = "Премиум", en = "Premium" }
hours = "24/7"
resolution = { P1 = "PT4H", P2 = "PT8H", P3 = "P1D", P4 = "P5D" }
"""


def tariffs() -> Tariffs:
    sla = dict.fromkeys(Priority, timedelta(hours=1))
    return parse_tariffs(TARIFFS, tz=MSK, hours=HOURS, first_response=sla)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK)


def ticket(n: int, created: datetime, kind: Kind, priority: Priority, **kw: Any) -> Ticket:
    return Ticket(
        number=n,
        intake_key=f"k{n}",
        customer_id=1,
        account_number="1234",
        topic=f"t{n}",
        kind=kind,
        description="d" * 10,
        priority=priority,
        status=kw.pop("status", Status.IN_PROGRESS),
        line=1,
        locale="en",
        created_at=created,
        updated_at=created,
        reopened_count=0,
        **kw,
    )


def resolved(n: int, when: datetime) -> TicketEvent:
    return TicketEvent(
        ticket_number=n, at=when, actor_id=None, actor_role="system", type="status", new="resolved"
    )


@pytest.fixture
async def session(backend_url: str) -> AsyncIterator[AsyncSession]:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    async with database.writer() as s:
        s.add(User(id=1, first_name="Cust", created_at=at(1, 0), updated_at=at(1, 0)))
        s.add_all(
            [
                # Premium at 22:00, out of the standard hours: 30 minutes to the first answer
                # and an hour to the resolution, round the clock.
                ticket(
                    1,
                    at(10, 22),
                    Kind.INCIDENT,
                    Priority.P1,
                    tariff="premium",
                    status=Status.RESOLVED,
                    first_response_at=at(10, 22, 30),
                    resolved_at=at(10, 23),
                ),
                # Standard: 45 minutes to the answer (overdue), 50 to the resolution: after
                # its 30-minute resolution target.
                ticket(
                    2,
                    at(10, 20),
                    Kind.SERVICE,
                    Priority.P3,
                    tariff="standard",
                    status=Status.RESOLVED,
                    first_response_at=at(10, 20, 45),
                    resolved_at=at(10, 20, 50),
                    sla_breached_at=at(10, 20, 40),
                ),
                # From before tariffs (NULL): the default one; still open at the day's end.
                ticket(3, at(9, 12), Kind.DEVELOPMENT, Priority.P4, status=Status.NEW),
                ticket(4, at(10, 10), Kind.INCIDENT, Priority.P2, tariff="premium"),
            ]
        )
        await s.flush()
        s.add_all([resolved(1, at(10, 23)), resolved(2, at(10, 20, 50))])
        await s.commit()
        yield s
    await database.dispose()


async def test_the_day_by_tariff(session: AsyncSession) -> None:
    summary = await Reports(HOURS, tariffs()).summary(session, DAY)
    # 30 minutes counted round the clock for #1 (in 09:00-21:00 it would be none).
    assert summary.first_response_median == timedelta(minutes=37, seconds=30)
    assert summary.resolution_median == timedelta(minutes=55)
    by_code = {line.tariff.code: line for line in summary.by_tariff}
    assert list(by_code) == ["standard", "premium"]
    premium, standard = by_code["premium"], by_code["standard"]
    assert (premium.opened, premium.first_responded, premium.sla_breaches) == (2, 1, 0)
    assert premium.first_response_median == timedelta(minutes=30)
    assert (premium.resolved, premium.resolution_late, premium.backlog) == (1, 0, 2)
    assert (standard.opened, standard.first_responded, standard.sla_breaches) == (1, 1, 1)
    assert standard.first_response_median == timedelta(minutes=45)
    assert (standard.resolved, standard.resolution_late, standard.backlog) == (1, 1, 2)

    i18n = I18n(path=ROOT / "locales", default_locale="en", domain="messages")
    with i18n.context(), i18n.use_locale("en"):
        text = summary_text(summary, "en")
    assert "<b>By tariff</b>" in text
    assert (
        "• Premium: opened 2, first responses 1 (median 30 minutes), SLA breaches 0, "
        "resolved 1 (0 after the resolution target), backlog 2"
    ) in text
    with i18n.context(), i18n.use_locale("ru"):
        assert "• Стандарт: открыто 1" in summary_text(summary, "ru")


async def test_without_a_tariffs_file_nothing_is_broken_down(session: AsyncSession) -> None:
    summary = await Reports(HOURS).summary(session, DAY)
    assert summary.by_tariff == []
    # Every ticket in the desk's hours: #1's half hour at 22:00 counts as none.
    assert summary.first_response_median == timedelta(minutes=22, seconds=30)


async def test_the_export_names_the_tariff(session: AsyncSession) -> None:
    rows = await Reports(HOURS, tariffs()).export_rows(session, date(2026, 11, 9), DAY)
    assert [(r.number, r.tariff, r.first_response_minutes) for r in rows] == [
        (1, "premium", 30),
        (2, "standard", 45),
        (3, "standard", None),
        (4, "premium", None),
    ]
    i18n = I18n(path=ROOT / "locales", default_locale="en", domain="messages")
    with i18n.context(), i18n.use_locale("en"):
        header = export_header(tariffs=True)
        assert len(export_header()) == len(header) - 1  # a desk without tariffs: no column
    data = export_csv(rows, header=header, tz=MSK, tariffs=True)
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert all(len(row) == len(header) for row in table)
    assert table[0][-1] == "Tariff"
    assert [row[-1] for row in table[1:]] == ["premium", "standard", "standard", "premium"]
    plain = await Reports(HOURS).export_rows(session, date(2026, 11, 9), DAY)
    assert {r.tariff for r in plain} == {""}
