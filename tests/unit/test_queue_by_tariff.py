"""/queue's order (SPEC §12): by priority, then the first-response deadline on each ticket's
tariff's terms (overdue first; answered and paused ones, which have none, after), then age."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database, migrate
from bot.db.models import Ticket, User
from bot.delivery.outbox import Outbox
from bot.domain.hours import SupportHours
from bot.domain.tariffs import parse_tariffs
from bot.domain.tickets import Kind, Priority, Status
from bot.services.cards import Cards
from bot.services.desk_config import DeskConfig
from bot.services.rendering import Rendered
from bot.services.staff.lookup import StaffLookup

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 3, 23, 0, tzinfo=MSK)
HOURS = SupportHours.parse("09:00-21:00", MSK)
SLA = {
    Priority.P1: timedelta(minutes=30),
    Priority.P2: timedelta(hours=2),
    Priority.P3: timedelta(hours=8),
    Priority.P4: timedelta(days=1),
}
TARIFFS = """
default = "standard"
[tariffs.standard]
name = "Standard"
[tariffs.premium]
name = "Premium"
hours = "24/7"
first_response = { P1 = "PT15M", P2 = "PT1H", P3 = "PT4H", P4 = "PT8H" }
"""


class FixedClock:
    def now(self) -> datetime:
        return NOW


def ticket(n: int, created: datetime, tariff: str | None, **kw: Any) -> Ticket:
    return Ticket(
        number=n,
        intake_key=f"k{n}",
        customer_id=1,
        account_number="1234",
        topic=f"t{n}",
        kind=Kind.INCIDENT,
        description="d" * 10,
        priority=kw.pop("priority", Priority.P2),
        status=kw.pop("status", Status.NEW),
        line=1,
        locale="en",
        created_at=created,
        updated_at=created,
        reopened_count=0,
        tariff=tariff,
        **kw,
    )


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=MSK)


@pytest.fixture
async def session(backend_url: str) -> AsyncIterator[AsyncSession]:
    await asyncio.to_thread(migrate, backend_url)  # an SQLite file, then PostgreSQL
    database = Database(backend_url)
    async with database.writer() as s, s.begin():
        s.add(User(id=1, first_name="Cust", created_at=at(1, 0), updated_at=at(1, 0)))
        await s.flush()
        s.add_all(
            [
                ticket(1, at(3, 22), "standard"),  # due at 11:00 tomorrow
                ticket(2, at(3, 22, 50), "premium"),  # due 23:50 tonight
                # Answered: no deadline any more.
                ticket(3, at(3, 21), "premium", first_response_at=at(3, 21, 10)),
                # Waiting for the customer: the clock stands still.
                ticket(
                    4,
                    at(3, 20),
                    None,
                    status=Status.WAITING_CUSTOMER,
                    waiting_since=at(3, 20, 30),
                ),
                ticket(5, at(3, 22, 59), "standard", priority=Priority.P1),
                ticket(6, at(3, 20), "premium"),  # overdue since 21:00
                ticket(7, at(3, 19), "premium", status=Status.CLOSED, closed_at=at(3, 19, 5)),
            ]
        )
        await s.flush()
        yield s
    await database.dispose()


def lookup() -> StaffLookup:
    tariffs = parse_tariffs(TARIFFS, tz=MSK, hours=HOURS, first_response=SLA)
    config = DeskConfig(
        staff_chat_id=-1, hours=HOURS, hours_text="", default_locale="en", tariffs=tariffs
    )
    clock = FixedClock()

    def render(notice: object, locale: str) -> Rendered:
        raise AssertionError("the queue renders nothing")

    cards = Cards(outbox=Outbox(clock), config=config, clock=clock, render=render)
    return StaffLookup(clock=clock, config=config, cards=cards)


async def test_the_queue_orders_by_priority_then_the_tariffs_deadline_then_age(
    session: AsyncSession,
) -> None:
    page = await lookup().queue(session, page=0, per_page=10)
    assert [row.number for row in page.rows] == [5, 6, 2, 1, 4, 3]
    assert page.total == 6 and page.pages == 1 and page.tz == MSK
    due = {row.number: row.sla.due if row.sla else None for row in page.rows}
    assert due[6] == at(3, 21)
    assert due[2] == at(3, 23, 50)
    assert due[1] == at(4, 11)  # two hours of 09:00-21:00 from 09:00 tomorrow
    assert due[5] == at(4, 9, 30)
    assert due[3] is None and due[4] is None
    names = {row.number: row.tariff.name("en") if row.tariff else None for row in page.rows}
    assert names == {
        5: "Standard",
        6: "Premium",
        2: "Premium",
        1: "Standard",
        4: "Standard",
        3: "Premium",
    }

    second = await lookup().queue(session, page=1, per_page=4)
    assert [row.number for row in second.rows] == [4, 3]
    assert (second.page, second.pages, second.total) == (1, 2, 6)
