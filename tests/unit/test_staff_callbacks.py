"""The card's buttons in process: the bot's own dispatcher (``bot/app.py``) over a migrated SQLite
file, fed real ``callback_query`` updates, with a bot whose session records what it is asked
instead of calling Telegram. Each press is checked where it lands: the ticket and its history,
the outbox, and the one answer to the press."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.methods import AnswerCallbackQuery, GetChatAdministrators, GetChatMember
from aiogram.methods.base import TelegramMethod, TelegramType
from aiogram.types import ChatMemberLeft, ChatMemberMember, Update
from aiogram.types import User as TgUser
from sqlalchemy import select

from bot.app import create_desk_config, create_dispatcher, create_i18n, create_services
from bot.clock import SystemClock
from bot.config import load_settings
from bot.db.engine import Database, migrate
from bot.db.models import Delivery, MessageLink, Ticket, TicketEvent, User
from bot.domain.tickets import CloseReason, Kind, Priority, Status
from bot.keyboards.staff import Op, StaffCb

STAFF = -1001000000001
BOT_ID = 42
ALICE = 1001  # a customer
ANNA = 2001  # staff
OUTSIDER = 2002  # was staff, no longer in the group
CARD = 500  # the card of the first ticket; the second's is CARD + 1


class RecordingSession(BaseSession):
    """Records every request; Telegram's side is only who is in the staff group."""

    def __init__(self, members: set[int]) -> None:
        super().__init__()
        self.members = members
        self.requests: list[TelegramMethod[Any]] = []

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        self.requests.append(method)
        result: Any = True
        if isinstance(method, GetChatMember):
            user = TgUser(id=method.user_id, is_bot=False, first_name="Someone")
            result = (
                ChatMemberMember(user=user)
                if method.user_id in self.members
                else ChatMemberLeft(user=user)
            )
        elif isinstance(method, GetChatAdministrators):
            result = []
        return result  # type: ignore[no-any-return]

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError
        yield b""  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        pass

    def answers(self) -> list[AnswerCallbackQuery]:
        return [r for r in self.requests if isinstance(r, AnswerCallbackQuery)]


class Idle:
    """The sender: woken after each commit; nothing is sent in these tests."""

    def wake(self) -> None:
        pass


class Desk:
    def __init__(self, url: str) -> None:
        settings = load_settings(
            _env_file=None,
            bot_token=f"{BOT_ID}:TEST",
            staff_chat_id=STAFF,
            manager_ids=frozenset(),
            database_url=url,
            default_locale="en",
            support_hours="00:00-24:00",
        )
        self.database = Database(url)
        self.clock = SystemClock()
        self.session = RecordingSession(members={ANNA})
        self.bot = Bot(f"{BOT_ID}:TEST", session=self.session)
        i18n = create_i18n(settings)
        desk = create_desk_config(settings)
        services = create_services(settings, self.database, self.clock, i18n, desk, self.bot)
        self.dispatcher: Dispatcher = create_dispatcher(
            settings,
            database=self.database,
            clock=self.clock,
            sender=Idle(),  # type: ignore[arg-type]
            i18n=i18n,
            services=services,
        )
        self.updates = 0

    async def seed(self) -> tuple[int, int]:
        """Alice's two new tickets, each with its card posted (and linked) in the group."""
        now = self.clock.now()
        numbers = []
        async with self.database.writer() as session, session.begin():
            for user_id, name in ((ALICE, "Alice"), (ANNA, "Anna")):
                session.add(
                    User(
                        id=user_id,
                        first_name=name,
                        language_code="en",
                        created_at=now,
                        updated_at=now,
                    )
                )
            for index in range(2):
                ticket = Ticket(
                    intake_key=f"k{index}",
                    customer_id=ALICE,
                    account_number="123456",
                    topic=f"Cannot pay {index}",
                    kind=Kind.INCIDENT,
                    description="The payment page fails.",
                    priority=Priority.P3,
                    status=Status.NEW,
                    line=1,
                    locale="en",
                    created_at=now,
                    updated_at=now,
                    staff_chat_id=STAFF,
                    card_message_id=CARD + index,
                )
                session.add(ticket)
                await session.flush()
                session.add(
                    MessageLink(
                        ticket_number=ticket.number,
                        direction="card",
                        customer_chat_id=ALICE,
                        customer_message_id=None,
                        staff_chat_id=STAFF,
                        staff_message_id=CARD + index,
                        created_at=now,
                    )
                )
                numbers.append(ticket.number)
        return numbers[0], numbers[1]

    async def press(
        self, data: StaffCb | str, *, card: int = CARD, by: int = ANNA
    ) -> AnswerCallbackQuery:
        """Press a button with ``data`` under the message ``card``; the one answer to it."""
        self.updates += 1
        packed = data if isinstance(data, str) else data.pack()
        update = Update.model_validate(
            {
                "update_id": self.updates,
                "callback_query": {
                    "id": f"press-{self.updates}",
                    "from": {
                        "id": by,
                        "is_bot": False,
                        "first_name": "Anna",
                        "language_code": "en",
                    },
                    "chat_instance": "staff",
                    "data": packed,
                    "message": {
                        "message_id": card,
                        "date": 1764666000,
                        "chat": {"id": STAFF, "type": "supergroup", "title": "Staff"},
                        "from": {"id": BOT_ID, "is_bot": True, "first_name": "Desk"},
                        "text": "the card",
                    },
                },
            },
            context={"bot": self.bot},
        )
        before = len(self.session.answers())
        await self.dispatcher.feed_update(self.bot, update)
        answers = self.session.answers()[before:]
        assert len(answers) == 1, answers  # answered once, whatever happened
        return answers[0]

    async def ticket(self, number: int) -> Ticket:
        async with self.database.reader() as session:
            ticket = await session.get(Ticket, number)
            assert ticket is not None
            return ticket

    async def events(self, number: int) -> list[tuple[str, str | None, str | None]]:
        async with self.database.reader() as session:
            rows = await session.scalars(
                select(TicketEvent)
                .where(TicketEvent.ticket_number == number)
                .order_by(TicketEvent.id)
            )
            return [(e.type, e.old, e.new) for e in rows]

    async def outbox(self, number: int) -> list[tuple[str, int, str]]:
        """(purpose, chat, text) of what was put in the outbox for ticket ``number``."""
        async with self.database.reader() as session:
            rows = await session.scalars(
                select(Delivery).where(Delivery.ticket_number == number).order_by(Delivery.id)
            )
            return [(d.purpose, d.chat_id, str(d.payload.get("text", ""))) for d in rows]


@pytest.fixture
def url(backend_url: str) -> str:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    migrate(url)
    return url


@pytest_asyncio.fixture
async def desk(url: str) -> AsyncIterator[Desk]:
    desk = Desk(url)
    try:
        yield desk
    finally:
        await desk.database.dispose()


def cb(op: Op, number: int, arg: int = 0) -> StaffCb:
    return StaffCb(op=op, number=number, arg=arg)


async def test_take_assigns_the_presser_and_tells_the_customer(desk: Desk) -> None:
    number, _ = await desk.seed()
    answer = await desk.press(cb(Op.TAKE, number))
    assert answer.text == f"#{number} is yours now." and not answer.show_alert
    ticket = await desk.ticket(number)
    assert (ticket.status, ticket.assignee_id) == (Status.IN_PROGRESS, ANNA)
    assert await desk.events(number) == [
        ("assignee", None, "Anna"),
        ("status", "new", "in_progress"),
    ]
    sent = await desk.outbox(number)
    assert [p for p, _, _ in sent] == ["card_edit", "notice"]
    assert "Anna from support is now working on your request" in sent[1][2]
    assert sent[1][1] == ALICE


async def test_a_refused_press_is_an_alert_and_the_card_is_drawn_again(desk: Desk) -> None:
    number, _ = await desk.seed()
    await desk.press(cb(Op.TAKE, number))
    before = await desk.outbox(number)
    answer = await desk.press(cb(Op.TAKE, number))
    assert (answer.text, answer.show_alert) == (f"#{number} is already yours.", True)
    assert [p for p, _, _ in await desk.outbox(number)] == [p for p, _, _ in before] + ["card_edit"]


async def test_priority_and_line(desk: Desk) -> None:
    number, _ = await desk.seed()
    answer = await desk.press(cb(Op.PRIORITY, number, int(Priority.P1)))
    assert answer.text == f"Priority of #{number}: P1."
    answer = await desk.press(cb(Op.LINE, number, 2))
    assert answer.text == f"#{number} is on line 2."
    ticket = await desk.ticket(number)
    assert (ticket.priority, ticket.line) == (Priority.P1, 2)
    assert await desk.events(number) == [("priority", "3", "1"), ("line", "1", "2")]
    # A priority that does not exist is a stale button, not an error.
    answer = await desk.press(cb(Op.PRIORITY, number, 9))
    assert (answer.text, answer.show_alert) == ("This button is no longer active.", True)
    assert (await desk.ticket(number)).priority is Priority.P1


async def test_ask_info_waits_for_the_customer(desk: Desk) -> None:
    number, _ = await desk.seed()
    answer = await desk.press(cb(Op.ASK_INFO, number))
    assert answer.text == (
        f"#{number} waits for the customer. Write your question as a reply to the card."
    )
    ticket = await desk.ticket(number)
    assert (ticket.status, ticket.assignee_id) == (Status.WAITING_CUSTOMER, ANNA)
    assert ticket.waiting_since is not None
    told = [text for purpose, chat, text in await desk.outbox(number) if chat == ALICE]
    assert any("Support needs more information" in text for text in told), told


async def test_resolve_asks_for_the_answer(desk: Desk) -> None:
    number, _ = await desk.seed()
    answer = await desk.press(cb(Op.RESOLVE, number))
    assert answer.text == "Write the answer as a reply to my message."
    (prompt,) = await desk.outbox(number)
    assert prompt[:2] == ("resolve_prompt", STAFF)
    assert f"Reply to this message with the answer for #{number}" in prompt[2]
    assert (await desk.ticket(number)).status is Status.NEW  # nothing decided yet


async def test_close_tells_the_customer_and_asks_for_a_rating(desk: Desk) -> None:
    number, _ = await desk.seed()
    answer = await desk.press(cb(Op.CLOSE, number))
    assert answer.text == f"#{number} is closed."
    ticket = await desk.ticket(number)
    assert (ticket.status, ticket.close_reason) == (Status.CLOSED, CloseReason.BY_STAFF)
    assert ("close_reason", None, "by_staff") in await desk.events(number)
    told = [text for purpose, chat, text in await desk.outbox(number) if chat == ALICE]
    assert len(told) == 2 and "is closed by support" in told[0], told
    # Closed is final: the next press is refused.
    answer = await desk.press(cb(Op.TAKE, number))
    assert answer.show_alert and answer.text == f"#{number} is closed: nothing can change it."


async def test_history_is_posted_to_the_ticket(desk: Desk) -> None:
    number, _ = await desk.seed()
    await desk.press(cb(Op.TAKE, number))
    answer = await desk.press(cb(Op.HISTORY, number))
    assert answer.text is None and not answer.show_alert  # the spinner just stops
    purpose, chat, text = (await desk.outbox(number))[-1]
    assert (purpose, chat) == ("staff_note", STAFF)
    assert f"History of #{number}" in text and "assignee: — → Anna" in text


async def test_a_press_naming_another_ticket_does_nothing(desk: Desk) -> None:
    number, other = await desk.seed()
    answer = await desk.press(cb(Op.CLOSE, other), card=CARD)  # the first ticket's card
    assert (answer.text, answer.show_alert) == ("This button is no longer active.", True)
    for each in (number, other):
        assert (await desk.ticket(each)).status is Status.NEW
        assert await desk.events(each) == []
        assert await desk.outbox(each) == []


async def test_someone_no_longer_in_the_group_cannot_press(desk: Desk) -> None:
    number, _ = await desk.seed()
    answer = await desk.press(cb(Op.TAKE, number), by=OUTSIDER)
    assert (answer.text, answer.show_alert) == ("This button is no longer active.", True)
    assert (await desk.ticket(number)).assignee_id is None
    assert await desk.events(number) == []
    assert await desk.outbox(number) == []


async def test_an_unknown_button_is_stale(desk: Desk) -> None:
    await desk.seed()
    answer = await desk.press("st:nope:1:0")
    assert (answer.text, answer.show_alert) == ("This button is no longer active.", True)
