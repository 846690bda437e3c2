"""Rules against bad input (issue 10, item 7), each alone: bounded callback data, numbers
from commands, CSV cells, and the desk's first day for the daily summary."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import I18n
from pydantic import ValidationError

from bot.db.engine import Database, migrate
from bot.db.models import Ticket, User
from bot.db.repositories import DeskSettings
from bot.delivery.outbox import Outbox
from bot.domain.hours import SupportHours
from bot.domain.ids import MAX_ID, parse_id
from bot.domain.tickets import Kind, Priority, Status
from bot.keyboards import customer, staff
from bot.services.desk_config import DeskConfig
from bot.services.managers import FIRST_DAY_KEY, ManagerService
from bot.services.reports import csv_cell
from bot.views import reports as report_views
from bot.views.render import ViewRenderer

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")

CALLBACKS: list[type[CallbackData]] = [
    cls
    for module in (staff, customer)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, CallbackData) and cls is not CallbackData
]


def _int_fields(cls: type[CallbackData]) -> list[str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return [
        name
        for name in cls.model_fields
        if hints[name] is int or typing.get_args(hints[name])[:1] == (int,)
    ]


def _valid(cls: type[CallbackData]) -> dict[str, str]:
    """A valid packed value for each field of ``cls``."""
    sample = {
        staff.StaffCb: staff.StaffCb(op=staff.Op.TAKE, number=1),
        staff.QueuePageCb: staff.QueuePageCb(page=0),
        staff.MacroCb: staff.MacroCb(macro=1, number=1),
        customer.DialogCb: customer.DialogCb(action=customer.Nav.NEW),
        customer.KindCb: customer.KindCb(kind=Kind.PROBLEM, q=1),
        customer.PickTicketCb: customer.PickTicketCb(number=1),
        customer.LanguageCb: customer.LanguageCb(code="en"),
        customer.ConfirmCb: customer.ConfirmCb(number=1, solved=True),
        customer.RateCb: customer.RateCb(number=1, score=5),
        customer.CloseMineCb: customer.CloseMineCb(number=1),
    }[cls]
    parts = sample.pack().split(":")[1:]
    return dict(zip(cls.model_fields, parts, strict=True))


def test_every_callback_data_class_is_covered() -> None:
    assert issubclass(ValidationError, ValueError)
    assert {c.__name__ for c in CALLBACKS} == {
        "StaffCb",
        "QueuePageCb",
        "MacroCb",
        "DialogCb",
        "KindCb",
        "PickTicketCb",
        "LanguageCb",
        "ConfirmCb",
        "RateCb",
        "CloseMineCb",
    }


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("forged", ["9" * 20, str(MAX_ID + 1), "-1", "1e3", "²"])
def test_forged_numbers_in_callback_data_do_not_parse(cls: type[CallbackData], forged: str) -> None:
    for name in _int_fields(cls):
        fields = _valid(cls)
        cls.unpack(":".join([cls.__prefix__, *fields.values()]))  # the valid one parses
        fields[name] = forged
        # A ValueError: aiogram's filter takes it for "not this button".
        with pytest.raises(ValidationError):
            cls.unpack(":".join([cls.__prefix__, *fields.values()]))


def test_the_largest_database_integer_still_parses() -> None:
    assert staff.StaffCb.unpack(f"st:take:{MAX_ID}:0").number == MAX_ID
    assert customer.ConfirmCb.unpack(f"ok:{MAX_ID}:1").number == MAX_ID


def test_numbers_from_commands() -> None:
    assert parse_id("42") == 42
    assert parse_id(" 7 ") == 7
    assert parse_id(str(MAX_ID)) == MAX_ID
    for bad in ("", "0", "-1", "9" * 20, str(MAX_ID + 1), "²", "١٢", "1.5", "12a", "+3"):
        assert parse_id(bad) is None, bad


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+7 999", "'+7 999"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Cannot log in", "Cannot log in"),
        ("a=b", "a=b"),
        ("", ""),
        (42, 42),
        (-5, -5),  # a number is data, not a formula
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(
    value: object, written: object
) -> None:
    assert csv_cell(value) == written


# -- the desk's first day ---------------------------------------------------------------------


@dataclass
class FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
async def database(backend_url: str) -> AsyncIterator[Database]:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    yield db
    await db.dispose()


def _managers(clock: FixedClock, *, summary_at: time = time(21, 0)) -> ManagerService:
    hours = SupportHours.parse("09:00-21:00", MSK)
    i18n = I18n(path=ROOT / "locales", default_locale="ru", domain="messages")
    return ManagerService(
        clock=clock,
        outbox=Outbox(clock),
        i18n=i18n,
        config=DeskConfig(staff_chat_id=-1, hours=hours, hours_text="", default_locale="ru"),
        managers=frozenset({3001}),
        summary_time=summary_at,
        render=ViewRenderer(i18n, report_views.notice_views()),
        chart=report_views.SummaryCharts(i18n),
    )


async def _sent_keys(database: Database) -> list[str]:
    from sqlalchemy import select

    from bot.db.models import DeskSetting

    async with database.reader() as session:
        keys = await session.scalars(select(DeskSetting.key))
        return sorted(k for k in keys if k.startswith("summary_sent:"))


async def test_a_fresh_desk_sums_up_today_only(database: Database) -> None:
    morning = datetime(2026, 11, 10, 9, 0, tzinfo=MSK)
    clock = FixedClock(morning)
    managers = _managers(clock)
    # 09:00, before SUMMARY_TIME: the day due is yesterday, before the desk existed.
    assert not await managers.daily(database.writer)
    assert await _sent_keys(database) == []
    async with database.reader() as session:
        assert await DeskSettings(session).get(FIRST_DAY_KEY) == "2026-11-10"
    clock.moment = morning.replace(hour=21)
    assert await managers.daily(database.writer)
    assert await _sent_keys(database) == ["summary_sent:2026-11-10"]
    # The next morning, yesterday (the first day) is already sent; nothing more.
    clock.moment = morning + timedelta(days=1)
    assert not await managers.daily(database.writer)


async def test_a_desk_that_ran_before_counts_from_its_oldest_ticket(database: Database) -> None:
    opened = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    async with database.writer() as session, session.begin():
        session.add(User(id=1, first_name="C", created_at=opened, updated_at=opened))
        session.add(
            Ticket(
                number=1,
                intake_key="k1",
                customer_id=1,
                account_number="1234",
                topic="t",
                kind=Kind.PROBLEM,
                description="d" * 10,
                priority=Priority.P3,
                status=Status.NEW,
                line=1,
                locale="en",
                created_at=opened,
                updated_at=opened,
                reopened_count=0,
            )
        )
    # Upgraded this morning: yesterday's summary, due since last night, still goes out.
    managers = _managers(FixedClock(datetime(2026, 11, 10, 9, 0, tzinfo=MSK)))
    assert await managers.first_day(database.writer) == date(2026, 10, 1)
    assert await managers.daily(database.writer)
    assert await _sent_keys(database) == ["summary_sent:2026-11-09"]
