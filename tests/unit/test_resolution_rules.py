"""The resolution service alone (issue 11): resolving a ticket that is still new takes it for
whoever answers, and the history records that assignment like any other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from aiogram.utils.i18n import I18n
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database, migrate
from bot.db.models import Delivery, Ticket, TicketEvent, User
from bot.delivery.outbox import Outbox
from bot.domain.hours import SupportHours
from bot.domain.tickets import Kind, Priority, Status
from bot.services.assignment import Assignment
from bot.services.cards import Cards
from bot.services.desk_config import DeskConfig
from bot.services.resolution import ResolutionService
from bot.views import resolution as resolution_views
from bot.views import staff as staff_views
from bot.views.render import ViewRenderer

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=MSK)
STAFF_CHAT = -100500
CUSTOMER, ANNA, BORIS = 1, 7, 8


@dataclass
class FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


class QuietCards:
    """The card is the staff side's business: here it only has to be there."""

    async def refresh(self, session: AsyncSession, ticket: Ticket) -> None:
        return None

    def post_to_ticket(
        self, session: AsyncSession, ticket: Ticket, text: str, *, purpose: str = "staff_note"
    ) -> None:
        return None


@pytest.fixture
def i18n() -> I18n:
    return I18n(path=ROOT / "locales", default_locale="en", domain="messages")


@pytest.fixture
async def session(backend_url: str) -> AsyncIterator[AsyncSession]:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    async with database.writer() as s, s.begin():
        for user_id, name in ((CUSTOMER, "Cust"), (ANNA, "Anna"), (BORIS, "Boris")):
            s.add(User(id=user_id, first_name=name, created_at=NOW, updated_at=NOW))
        yield s
    await database.dispose()


def _service(i18n: I18n) -> ResolutionService:
    clock = FixedClock(NOW)
    outbox = Outbox(clock)
    config = DeskConfig(
        staff_chat_id=STAFF_CHAT,
        hours=SupportHours.parse("00:00-23:59", MSK),
        hours_text="",
        default_locale="en",
    )
    cards = cast(Cards, QuietCards())
    render = ViewRenderer(i18n, resolution_views.notice_views(), staff_views.notice_views())
    return ResolutionService(
        clock=clock,
        outbox=outbox,
        config=config,
        cards=cards,
        render=render,
        # The same path of assignment as staff's own Take (the drift this test guards against).
        assignment=Assignment(
            clock=clock, outbox=outbox, config=config, cards=cards, render=render
        ),
        reminder_after=timedelta(days=1),
        auto_close_after=timedelta(days=3),
    )


async def _ticket(session: AsyncSession, status: Status, assignee_id: int | None = None) -> Ticket:
    ticket = Ticket(
        number=1,
        intake_key="k1",
        customer_id=CUSTOMER,
        account_number="1234",
        topic="Cannot log in",
        kind=Kind.INCIDENT,
        description="d" * 10,
        priority=Priority.P2,
        status=status,
        assignee_id=assignee_id,
        line=1,
        locale="en",
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
        reopened_count=0,
    )
    session.add(ticket)
    await session.flush()
    return ticket


async def _events(session: AsyncSession, kind: str) -> list[TicketEvent]:
    await session.flush()
    query = select(TicketEvent).where(TicketEvent.type == kind).order_by(TicketEvent.id)
    return list(await session.scalars(query))


async def test_resolving_a_new_ticket_records_who_took_it(
    session: AsyncSession, i18n: I18n
) -> None:
    ticket = await _ticket(session, Status.NEW)
    anna = await session.get(User, ANNA)
    assert anna is not None
    with i18n.context(), i18n.use_locale("en"):
        await _service(i18n).resolve(session, ticket, anna, answer_message_id=42)
    assert ticket.status is Status.RESOLVED and ticket.assignee_id == ANNA
    [assigned] = await _events(session, "assignee")
    assert (assigned.actor_id, assigned.actor_role) == (ANNA, "staff")
    assert (assigned.old, assigned.new) == (None, "Anna")
    assert assigned.details == {"assignee_id": ANNA}
    steps = [(e.old, e.new) for e in await _events(session, "status")]
    assert steps == [("new", "in_progress"), ("in_progress", "resolved")]
    # The answer is copied from the staff group, then the question with its buttons.
    copy, question = list(
        await session.scalars(
            select(Delivery).where(Delivery.chat_id == CUSTOMER).order_by(Delivery.id)
        )
    )
    assert copy.method == "CopyMessage" and copy.purpose == "answer"
    assert copy.payload == {"chat_id": CUSTOMER, "from_chat_id": STAFF_CHAT, "message_id": 42}
    assert question.purpose == "confirm" and "Is the problem solved?" in question.payload["text"]
    assert question.payload["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ok:1:1"


async def test_resolving_a_ticket_someone_holds_changes_no_assignee(
    session: AsyncSession, i18n: I18n
) -> None:
    ticket = await _ticket(session, Status.IN_PROGRESS, assignee_id=BORIS)
    anna = await session.get(User, ANNA)
    assert anna is not None
    with i18n.context(), i18n.use_locale("en"):
        await _service(i18n).resolve(session, ticket, anna, answer_message_id=None)
    assert ticket.status is Status.RESOLVED and ticket.assignee_id == BORIS
    assert await _events(session, "assignee") == []
