"""``/export`` of any size arrives (issue 11): under the upload limit as one CSV, else zipped,
else split by month (a month still too big in equal parts), every row in exactly one file."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import random
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiogram.utils.i18n import I18n
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database, migrate
from bot.db.models import Delivery, Ticket, User
from bot.delivery.outbox import Outbox
from bot.domain.hours import SupportHours
from bot.domain.tickets import Kind, Priority, Status
from bot.services.desk_config import DeskConfig
from bot.services.managers import ExportFile, ManagerService
from bot.views import reports as report_views
from bot.views.render import ViewRenderer

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
MANAGER = 3001
# Tickets opened per month, August to November: November alone is too big for one file.
PER_MONTH = {8: 12, 9: 12, 10: 12, 11: 60}
LIMIT = 4000


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


async def _seed(database: Database, topic: object) -> list[int]:
    """Tickets over four months; ``topic(n)`` makes each one's topic."""
    opened = datetime(2026, 8, 1, 10, 0, tzinfo=MSK)
    numbers = []
    async with database.writer() as session, session.begin():
        session.add(User(id=1, first_name="Cust", created_at=opened, updated_at=opened))
        number = 0
        for month, count in PER_MONTH.items():
            for day in range(count):
                number += 1
                created = datetime(2026, month, 1 + day % 28, 12, 0, tzinfo=MSK)
                session.add(
                    Ticket(
                        number=number,
                        intake_key=f"k{number}",
                        customer_id=1,
                        account_number="1234",
                        topic=topic(number),  # type: ignore[operator]
                        kind=Kind.SERVICE,
                        description="d" * 10,
                        priority=Priority.P3,
                        status=Status.NEW,
                        line=1,
                        locale="en",
                        created_at=created,
                        updated_at=created,
                        reopened_count=0,
                    )
                )
                numbers.append(number)
    return numbers


def _managers(limit: int) -> ManagerService:
    clock = FixedClock(datetime(2026, 11, 30, 18, 0, tzinfo=MSK))
    i18n = I18n(path=ROOT / "locales", default_locale="en", domain="messages")
    return ManagerService(
        clock=clock,
        outbox=Outbox(clock),
        i18n=i18n,
        config=DeskConfig(
            staff_chat_id=-1,
            hours=SupportHours.parse("09:00-21:00", MSK),
            hours_text="",
            default_locale="en",
        ),
        managers=frozenset({MANAGER}),
        summary_time=time(21, 0),
        render=ViewRenderer(i18n, report_views.notice_views()),
        chart=report_views.SummaryCharts(i18n),
        upload_limit=limit,
    )


HEADER = ["Number", "Opened"] + [f"c{n}" for n in range(13)]


async def _export(
    database: Database, managers: ManagerService
) -> tuple[list[ExportFile], list[Delivery]]:
    write = partial(report_views.export_csv, header=HEADER, tz=MSK)
    async with database.writer() as session, session.begin():
        export = await managers.export(session, date(2026, 8, 1), date(2026, 11, 30))
        files = await managers.send_export(session, MANAGER, export, write)
        sent = await _deliveries(session)
    return files, sent


async def _deliveries(session: AsyncSession) -> list[Delivery]:
    await session.flush()
    query = select(Delivery).where(Delivery.purpose == "export").order_by(Delivery.id)
    return list(await session.scalars(query))


def _rows(file: ExportFile) -> list[list[str]]:
    """The data rows of one file, after checking that it starts with the header."""
    data = file.data
    if file.filename.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            [name] = archive.namelist()
            assert name == file.filename.removesuffix(".zip") + ".csv"
            data = archive.read(name)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == HEADER
    return rows[1:]


def _noise(number: int) -> str:
    """A topic that does not compress: what makes even a zipped export too big."""
    return base64.b64encode(random.Random(number).randbytes(60)).decode()


async def test_a_big_export_is_split_by_month_each_file_under_the_limit(
    database: Database,
) -> None:
    numbers = await _seed(database, _noise)
    files, sent = await _export(database, _managers(LIMIT))
    names = [file.filename for file in files]
    # Aug–Oct fit as plain CSV; November's 60 rows do not even zipped, so it comes in parts.
    assert names[:3] == ["tickets-2026-08.csv", "tickets-2026-09.csv", "tickets-2026-10.csv"]
    assert len(names) > 4 and all(name.startswith("tickets-2026-11-") for name in names[3:])
    assert all(len(file.data) <= LIMIT for file in files)
    seen = [int(row[0]) for file in files for row in _rows(file)]
    assert sorted(seen) == numbers  # every row, each once
    # Each month's rows in its own file.
    for file in files:
        month = file.filename[len("tickets-") :][:7]
        assert {row[1][:7] for row in _rows(file)} == {month}
    # And each file is a document of its own to the manager, in that order.
    assert [d.payload["chat_id"] for d in sent] == [MANAGER] * len(files)
    assert [d.method for d in sent] == ["SendDocument"] * len(files)
    documents = [d.payload["document"] for d in sent]
    assert [doc["filename"] for doc in documents] == names
    assert [base64.b64decode(doc["__file_b64"]) for doc in documents] == [f.data for f in files]


async def test_an_export_over_the_limit_that_compresses_goes_as_one_zip(
    database: Database,
) -> None:
    numbers = await _seed(database, lambda number: "Cannot log in to the account " * 4)
    files, _sent = await _export(database, _managers(LIMIT))
    [file] = files
    assert file.filename == "tickets-2026-08-01-2026-11-30.zip"
    assert len(file.data) <= LIMIT
    assert [int(row[0]) for row in _rows(file)] == numbers


async def test_an_export_under_the_limit_is_one_plain_csv(database: Database) -> None:
    numbers = await _seed(database, _noise)
    files, _sent = await _export(database, _managers(50 * 1000 * 1000))
    [file] = files
    assert file.filename == "tickets-2026-08-01-2026-11-30.csv"
    assert [int(row[0]) for row in _rows(file)] == numbers
