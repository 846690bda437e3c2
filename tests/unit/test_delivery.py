"""The outbox and its sender (SPEC §8) against the emulated Bot API and a real SQLite file."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html as std_html
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiogram import Bot, html
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramServerError
from aiogram.methods import SendDocument, SendMessage
from aiogram.utils.i18n import I18n
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import ShiftedClock
from bot.db.engine import create_engine, create_session_factory, migrate
from bot.db.models import Delivery, MessageLink, Ticket, TicketEvent, User
from bot.db.repositories import DeliveryRepo, DeskSettings, TicketRepo, UserRepo
from bot.delivery.intents import Intent, Refs
from bot.delivery.limiter import Limits, RateLimiter
from bot.delivery.outbox import Outbox, stream_of
from bot.delivery.outcomes import Outcomes
from bot.delivery.sender import Sender
from bot.delivery.telegram import PART_LIMIT, build_calls, split_html, visible_length
from bot.domain.hours import SupportHours
from bot.domain.tickets import Kind, Priority, Status
from bot.emulator import FakeTelegram
from bot.services.desk_config import DeskConfig
from bot.services.desk_outcomes import DeskOutcomes
from bot.views.desk import desk_views
from bot.views.render import ViewRenderer
from tests.waiting import eventually


def strip_tags(part: str) -> str:
    """The visible text of our HTML."""
    return std_html.unescape(re.sub(r"<[^>]+>", "", part))


TOKEN = "123456:TEST-TOKEN"
STAFF = -1001234567890
ALICE, BOB, CAROL, DAVE, ERIN = 1001, 1002, 1003, 1004, 1005
CUSTOMERS = [ALICE, BOB, CAROL, DAVE, ERIN]
FAST = Limits(
    private_per_second=1000, private_burst=1000, group_per_minute=100_000, global_per_second=1000
)


# ---------------------------------------------------------------- fixtures


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    telegram = FakeTelegram(token=TOKEN)
    await telegram.start()
    for user_id in CUSTOMERS:
        telegram.add_user(user_id, f"User{user_id}", started=True)
    telegram.add_group(STAFF, "Staff")
    yield telegram
    await telegram.stop()


async def close_bot(bot: Bot) -> None:
    # aiogram's session.close() sleeps for TLS shutdown; plain HTTP does not need it.
    inner = getattr(bot.session, "_session", None)
    if inner is not None:
        await inner.close()
    await bot.session.close()


@pytest_asyncio.fixture
async def make_bot(fake: FakeTelegram) -> AsyncIterator[Callable[[], Bot]]:
    bots: list[Bot] = []

    def factory() -> Bot:
        assert fake.url
        bot = Bot(
            fake.token,
            session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)),
            default=DefaultBotProperties(parse_mode="HTML"),
        )
        bots.append(bot)
        return bot

    yield factory
    for bot in bots:
        await close_bot(bot)


@pytest.fixture
def db_url(backend_url: str) -> str:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    migrate(url)
    return url


@pytest_asyncio.fixture
async def make_engine(db_url: str) -> AsyncIterator[Callable[[], AsyncEngine]]:
    engines: list[AsyncEngine] = []

    def factory() -> AsyncEngine:
        engine = create_engine(db_url)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def sessions(make_engine: Callable[[], AsyncEngine]) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(make_engine())


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


def desk_outcomes(clock: ShiftedClock) -> Outcomes:
    """What the running desk registers with its sender: cards, the message map, topics."""
    config = DeskConfig(
        staff_chat_id=STAFF,
        hours=SupportHours.parse("09:00-21:00", ZoneInfo("Europe/Moscow")),
        hours_text="",
        default_locale="ru",
    )
    i18n = I18n(path=Path(__file__).parents[2] / "locales", default_locale="ru", domain="messages")
    return DeskOutcomes(
        config=config,
        clock=clock,
        outbox=Outbox(clock),
        render=ViewRenderer(i18n, desk_views()),
        managers=frozenset(),
    ).register(Outcomes())


@pytest_asyncio.fixture
async def make_sender(
    make_bot: Callable[[], Bot],
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
) -> AsyncIterator[Callable[..., Sender]]:
    senders: list[Sender] = []

    def factory(
        limits: Limits = FAST,
        *,
        session_factory: async_sessionmaker[AsyncSession] | None = None,
        outcomes: Outcomes | None = None,
        **kwargs: Any,
    ) -> Sender:
        sender = Sender(
            bot=make_bot(),
            session_factory=session_factory or sessions,
            clock=clock,
            limiter=RateLimiter(limits),
            outcomes=outcomes or desk_outcomes(clock),
            **kwargs,
        )
        senders.append(sender)
        return sender

    yield factory
    for sender in senders:
        await sender.stop(timeout=5)


@contextlib.asynccontextmanager
async def running(sender: Sender) -> AsyncIterator[None]:
    task = asyncio.create_task(sender.run())
    try:
        yield
    finally:
        await sender.stop(timeout=5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [fake.text_of(m) for m in fake.bot_messages(chat_id)]


def send_calls(fake: FakeTelegram, *, ok: bool | None = None) -> list[Any]:
    return [c for c in fake.calls if c.method == "sendMessage" and (ok is None or c.ok is ok)]


async def enqueue(
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    chat_id: int,
    text: str,
    **kwargs: Any,
) -> int:
    """Record one sendMessage in a committed transaction; return the delivery id."""
    kwargs.setdefault("purpose", "notice")
    async with sessions() as session, session.begin():
        delivery = Outbox(clock).add(
            session,
            Intent(
                chat_id=chat_id,
                method=SendMessage,
                payload={"chat_id": chat_id, "text": text},
                **kwargs,
            ),
        )
        await session.flush()
        return delivery.id


async def delivery(sessions: async_sessionmaker[AsyncSession], delivery_id: int) -> Delivery:
    async with sessions() as session:
        row = await session.get(Delivery, delivery_id)
        assert row is not None
        return row


async def add_ticket(sessions: async_sessionmaker[AsyncSession], customer_id: int) -> int:
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        await UserRepo(session).upsert(
            user_id=customer_id,
            first_name="Customer",
            last_name=None,
            username=None,
            language_code="en",
            now=now,
        )
        ticket = await TicketRepo(session).add(
            Ticket(
                intake_key=f"key-{customer_id}-{now.timestamp()}",
                customer_id=customer_id,
                account_number="12345678",
                topic="No internet",
                kind=Kind.INCIDENT,
                description="Nothing loads since the morning.",
                priority=Priority.P2,
                status=Status.IN_PROGRESS,
                locale="en",
                created_at=now,
                updated_at=now,
            )
        )
        return ticket.number


# ---------------------------------------------------------------- order


async def test_messages_of_one_stream_arrive_in_order(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    ids = [await enqueue(sessions, clock, ALICE, f"message {i}") for i in range(10)]
    await make_sender().drain(timeout=10)
    assert texts(fake, ALICE) == [f"message {i}" for i in range(10)]
    for delivery_id in ids:
        row = await delivery(sessions, delivery_id)
        assert row.status == "sent"
        assert row.attempts == 1
        assert row.sent_at is not None
        assert row.result is not None
        assert len(row.result["message_ids"]) == 1


async def test_a_failing_head_holds_back_the_rest_of_its_stream(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    for i in range(3):
        await enqueue(sessions, clock, ALICE, f"m{i}")
    await enqueue(sessions, clock, BOB, "to bob")
    fake.fail_next("sendMessage", times=1, error_code=500, chat_id=ALICE)
    sender = make_sender()
    await sender.drain(timeout=10)
    assert texts(fake, ALICE) == []  # m1, m2 did not overtake the failed m0
    assert texts(fake, BOB) == ["to bob"]  # other streams are not held up
    clock.offset += timedelta(minutes=10)
    await sender.drain(timeout=10)
    assert texts(fake, ALICE) == ["m0", "m1", "m2"]


async def test_a_lower_rank_goes_first_across_streams(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    await enqueue(sessions, clock, ALICE, "alice rank 5", rank=5)
    await enqueue(sessions, clock, BOB, "bob rank 5", rank=5)
    await enqueue(sessions, clock, CAROL, "carol rank 3", rank=3)
    await enqueue(sessions, clock, DAVE, "dave rank 0", rank=0)
    await enqueue(sessions, clock, ERIN, "erin rank 1", rank=1)
    await make_sender(concurrency=1).drain(timeout=10)
    order = [c.params["text"] for c in send_calls(fake, ok=True)]
    assert order == ["dave rank 0", "erin rank 1", "carol rank 3", "alice rank 5", "bob rank 5"]


def test_streams() -> None:
    assert stream_of(ALICE, None) == str(ALICE)
    assert stream_of(ALICE, 7) == str(ALICE)  # a private chat is one conversation
    assert stream_of(STAFF, 7) == f"{STAFF}:7"  # a group: one stream per ticket
    assert stream_of(STAFF, 8) != stream_of(STAFF, 7)
    assert stream_of(STAFF, None) == str(STAFF)


# ---------------------------------------------------------------- retries


async def test_429_is_waited_out_and_delivered_once(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    fake.fail_next("sendMessage", times=1, error_code=429, retry_after=1)
    delivery_id = await enqueue(sessions, clock, ALICE, "after the flood")
    sender = make_sender()
    async with running(sender):

        async def sent() -> bool:
            return (await delivery(sessions, delivery_id)).status == "sent"

        await eventually(sent, within=10)
        # Recorded, and nothing in hand: nothing more can come of it.
        await eventually(sender.idle, "the sender kept something in hand")
    assert texts(fake, ALICE) == ["after the flood"]
    calls = send_calls(fake)
    assert [c.error_code for c in calls] == [429, None]
    assert calls[1].time - calls[0].time >= 0.95  # retry_after honoured
    row = await delivery(sessions, delivery_id)
    assert row.attempts == 2
    assert row.error is None


async def test_500_twice_then_delivered_once(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    fake.fail_next("sendMessage", times=2, error_code=500)
    delivery_id = await enqueue(sessions, clock, ALICE, "server trouble")
    sender = make_sender()
    for _ in range(4):
        await sender.drain(timeout=10)
        row = await delivery(sessions, delivery_id)
        if row.status != "pending":
            break
        assert row.error is not None
        assert row.not_before > clock.now()  # backs off instead of hammering
        clock.offset += timedelta(minutes=10)  # let the backoff pass
    assert row.status == "sent"
    assert row.attempts == 3
    assert texts(fake, ALICE) == ["server trouble"]
    assert [c.error_code for c in send_calls(fake)] == [500, 500, None]


async def test_a_dropped_connection_is_retried(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    fake.drop_connection_next("sendMessage", times=1)
    delivery_id = await enqueue(sessions, clock, ALICE, "flaky network")
    sender = make_sender()
    await sender.drain(timeout=10)
    clock.offset += timedelta(minutes=10)
    await sender.drain(timeout=10)
    assert (await delivery(sessions, delivery_id)).status == "sent"
    assert texts(fake, ALICE) == ["flaky network"]


# ---------------------------------------------------------------- failures for good


async def test_a_blocked_user_fails_for_good_and_is_recorded(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    number = await add_ticket(sessions, BOB)
    fake.block(BOB)
    delivery_id = await enqueue(
        sessions, clock, BOB, "your answer", subject=number, purpose="relay"
    )
    sender = make_sender()
    await sender.drain(timeout=10)
    clock.offset += timedelta(hours=1)
    await sender.drain(timeout=10)  # not retried

    assert fake.bot_messages(BOB) == []
    assert len(send_calls(fake)) == 1
    row = await delivery(sessions, delivery_id)
    assert row.status == "failed"
    assert row.attempts == 1
    assert row.error is not None
    assert "blocked" in row.error
    async with sessions() as session:
        user = await session.get(User, BOB)
        assert user is not None
        assert user.blocked_bot_at is not None
        events = (
            (await session.execute(select(TicketEvent).where(TicketEvent.ticket_number == number)))
            .scalars()
            .all()
        )
    failed = [e for e in events if e.type == "delivery_failed"]
    assert len(failed) == 1
    assert failed[0].actor_role == "system"
    assert failed[0].new == "relay"
    assert failed[0].details is not None
    assert failed[0].details["chat_id"] == BOB


async def test_a_failure_without_a_ticket_records_no_event(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    fake.block(CAROL)
    delivery_id = await enqueue(sessions, clock, CAROL, "hello")
    await make_sender().drain(timeout=10)
    assert (await delivery(sessions, delivery_id)).status == "failed"
    async with sessions() as session:
        assert (await session.execute(select(TicketEvent))).scalars().all() == []


async def test_bad_html_fails_and_is_not_retried_forever(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    bad = await enqueue(sessions, clock, ALICE, "<b>unclosed")
    good = await enqueue(sessions, clock, ALICE, "<b>closed</b> &amp; fine")
    sender = make_sender()
    for _ in range(3):
        await sender.drain(timeout=10)
        clock.offset += timedelta(hours=1)
    row = await delivery(sessions, bad)
    assert row.status == "failed"
    assert row.attempts == 1
    assert row.error is not None
    assert "parse" in row.error
    assert len([c for c in send_calls(fake) if c.params.get("text") == "<b>unclosed"]) == 1
    # The stream goes on after a delivery that failed for good.
    assert (await delivery(sessions, good)).status == "sent"
    assert texts(fake, ALICE) == ["closed & fine"]


# ---------------------------------------------------------------- crashes and concurrency


async def test_a_delivery_whose_lease_expired_is_sent(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    delivery_id = await enqueue(sessions, clock, ALICE, "after a crash")
    async with sessions() as session, session.begin():
        # Another sender claimed it and died before sending.
        row = await session.get(Delivery, delivery_id)
        assert row is not None
        row.attempts = 1
        row.claimed_until = clock.now() - timedelta(seconds=1)
    await make_sender().drain(timeout=10)
    row = await delivery(sessions, delivery_id)
    assert row.status == "sent"
    assert row.attempts == 2
    assert texts(fake, ALICE) == ["after a crash"]


async def test_a_delivery_leased_by_a_live_sender_is_left_alone(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    delivery_id = await enqueue(sessions, clock, ALICE, "being sent elsewhere")
    async with sessions() as session, session.begin():
        row = await session.get(Delivery, delivery_id)
        assert row is not None
        row.attempts = 1
        row.claimed_until = clock.now() + timedelta(seconds=60)
    await make_sender().drain(timeout=2)
    assert texts(fake, ALICE) == []
    assert (await delivery(sessions, delivery_id)).status == "pending"


async def test_two_senders_send_each_delivery_exactly_once(
    fake: FakeTelegram,
    make_engine: Callable[[], AsyncEngine],
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    expected: dict[int, list[str]] = {user: [] for user in CUSTOMERS}
    async with sessions() as session, session.begin():
        outbox = Outbox(clock)
        for i in range(50):
            user = CUSTOMERS[i % len(CUSTOMERS)]
            text = f"delivery {i}"
            expected[user].append(text)
            outbox.add(
                session,
                Intent(
                    chat_id=user,
                    method=SendMessage,
                    payload={"chat_id": user, "text": text},
                    purpose="notice",
                ),
            )
    # Two processes: each its own engine (connection pool) and its own Bot session.
    first = make_sender(session_factory=create_session_factory(make_engine()))
    second = make_sender(session_factory=create_session_factory(make_engine()))
    await asyncio.gather(first.drain(timeout=20), second.drain(timeout=20))
    await asyncio.gather(first.drain(timeout=5), second.drain(timeout=5))

    sent = [c.params["text"] for c in send_calls(fake, ok=True)]
    assert sorted(sent) == sorted(f"delivery {i}" for i in range(50))
    assert len(sent) == len(set(sent)) == 50
    for user in CUSTOMERS:
        assert texts(fake, user) == expected[user]  # and in order per chat
    async with sessions() as session:
        rows = (await session.execute(select(Delivery))).scalars().all()
    assert {r.status for r in rows} == {"sent"}
    assert all(r.attempts == 1 for r in rows)


@pytest.mark.parametrize("share", [True, False], ids=["sharing chats", "each on its own"])
async def test_two_instances_together_keep_telegrams_limits(
    fake: FakeTelegram,
    make_engine: Callable[[], AsyncEngine],
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
    share: bool,
) -> None:
    """Two instances' senders and Telegram's limits (the emulator enforces them): holding a
    chat one at a time (SPEC §11), they provoke no 429 where each alone would keep its own
    pace and together break the chat's — which the second case shows the test can see."""
    fake.enforce_limits = True
    customer = CUSTOMERS[0]
    # Each on its own, both senders keep a chat's pace, and together twice it: 16 messages to
    # one customer go in about 8 s, beyond the emulator's 12 in any 10 s whichever sender
    # claims what (with 6, one sender's claims refused by the other's can leave the two in a
    # pace that passes).
    streams = 6 if share else 16
    for n in range(streams):  # different tickets' streams: either sender may take any of them
        await enqueue(sessions, clock, customer, f"to the customer {n}", stream=f"c{n}")
    for n in range(4):
        await enqueue(sessions, clock, STAFF, f"to the group {n}", stream=f"g{n}")
    senders = [
        make_sender(
            Limits(), session_factory=create_session_factory(make_engine()), share_chats=share
        )
        for _ in range(2)
    ]
    if not share:
        async with running(senders[0]), running(senders[1]):
            await eventually(lambda: fake.rate_limited > 0, "no 429 seen", within=15)
        return
    await asyncio.gather(*(sender.drain(timeout=15) for sender in senders))
    assert fake.rate_limited == 0
    assert sorted(texts(fake, customer)) == sorted(f"to the customer {n}" for n in range(6))
    assert sorted(texts(fake, STAFF)) == sorted(f"to the group {n}" for n in range(4))
    async with sessions() as session:
        rows = (await session.execute(select(Delivery))).scalars().all()
    assert {r.status for r in rows} == {"sent"} and all(r.attempts == 1 for r in rows)


# ---------------------------------------------------------------- context


async def test_reply_to_delivery_makes_the_second_message_a_reply(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    first = await enqueue(sessions, clock, ALICE, "the question")
    second = await enqueue(sessions, clock, ALICE, "the answer", refs=Refs(reply_to_delivery=first))
    await make_sender().drain(timeout=10)
    messages = fake.bot_messages(ALICE)
    assert [fake.text_of(m) for m in messages] == ["the question", "the answer"]
    assert "reply_to_message" not in messages[0]
    assert messages[1]["reply_to_message"]["message_id"] == messages[0]["message_id"]
    first_row = await delivery(sessions, first)
    assert first_row.result == {"message_ids": [messages[0]["message_id"]]}
    assert (await delivery(sessions, second)).status == "sent"


async def test_a_delayed_delivery_waits(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    await enqueue(sessions, clock, ALICE, "later", delay=timedelta(minutes=5))
    sender = make_sender()
    await sender.drain(timeout=2)
    assert texts(fake, ALICE) == []
    clock.offset += timedelta(minutes=5, seconds=1)
    await sender.drain(timeout=10)
    assert texts(fake, ALICE) == ["later"]


# ---------------------------------------------------------------- limits


async def test_the_group_limit_holds_back_what_exceeds_it(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    """group_per_minute=2: two messages go at once, the third waits for the minute to pass."""
    for ticket in range(1, 4):
        await enqueue(sessions, clock, STAFF, f"card {ticket}", stream=f"s{ticket}")
    limits = Limits(
        private_per_second=1000, private_burst=1000, group_per_minute=2, global_per_second=1000
    )
    await make_sender(limits).drain(timeout=2)
    assert len(send_calls(fake, ok=True)) == 2
    async with sessions() as session:
        pending = (
            (await session.execute(select(Delivery).where(Delivery.status == "pending")))
            .scalars()
            .all()
        )
    assert [d.payload["text"] for d in pending] == ["card 3"]


async def test_private_chats_are_not_held_up_by_the_group_limit(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    limits = Limits(
        private_per_second=1000, private_burst=1000, group_per_minute=1, global_per_second=1000
    )
    sender = make_sender(limits)
    await enqueue(sessions, clock, STAFF, "first card", stream="a")
    await sender.drain(timeout=5)
    await enqueue(sessions, clock, STAFF, "second card", stream="b")
    await enqueue(sessions, clock, ALICE, "to the customer")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with running(sender):
        await eventually(lambda: texts(fake, ALICE) == ["to the customer"], within=5)
        assert loop.time() - started < 3
        assert texts(fake, STAFF) == ["first card"]  # the group waits its turn


# ---------------------------------------------------------------- fairness


async def test_one_customers_backlog_does_not_hold_up_another_customer(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    """SPEC §4: fair between customers within a priority. Alice's 30 queued relays (two
    tickets) were written first; Bob's one message still goes second, not 31st."""
    for n in range(30):
        await enqueue(
            sessions,
            clock,
            STAFF,
            f"alice {n}",
            subject=1 + n % 2,
            rank=1,
            refs=Refs(party=ALICE),
        )
    await enqueue(sessions, clock, STAFF, "bob", subject=3, rank=1, refs=Refs(party=BOB))
    await make_sender(concurrency=1).drain(timeout=20)
    order = [c.params["text"] for c in send_calls(fake, ok=True)]
    assert order.index("bob") == 1
    # Alice's own messages keep their order, each ticket's and overall.
    alice = [text for text in order if text != "bob"]
    assert alice == [f"alice {n}" for n in range(30)]


async def test_a_coalesced_relay_sends_what_it_holds_when_claimed(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message joins a coalesced relay after the sender read it as due but before it claimed
    it: what goes out is what the relay holds at the claim, so the joined message is not lost."""
    from bot.db.repositories import DeliveryRepo

    delivery_id = await enqueue(sessions, clock, STAFF, "first", refs=Refs(grows=True))
    original = DeliveryRepo.claim_many

    async def claim_after_a_join(
        self: DeliveryRepo, ids: Any, **kwargs: Any
    ) -> dict[int, Delivery]:
        async with sessions() as other, other.begin():
            row = await other.get(Delivery, delivery_id)
            assert row is not None
            row.payload = {"chat_id": STAFF, "text": "first\nsecond"}
        return await original(self, ids, **kwargs)

    monkeypatch.setattr(DeliveryRepo, "claim_many", claim_after_a_join)
    await make_sender().drain(timeout=10)
    assert texts(fake, STAFF) == ["first\nsecond"]


async def test_sends_recorded_together_are_each_marked_sent_and_mapped(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    """The outcomes of a sweep are kept in one transaction (one UPDATE for the sends, the links
    of them all in one INSERT): each delivery still ends sent with its own message, and each
    message is mapped to its own ticket and customer."""
    sent: dict[int, tuple[int, int]] = {}  # delivery -> (ticket, customer)
    for customer in CUSTOMERS:
        number = await add_ticket(sessions, customer)
        for text in ("one", "two"):
            delivery_id = await enqueue(
                sessions,
                clock,
                customer,
                f"{text} for {customer}",
                subject=number,
                purpose="answer",
                refs=Refs(party=customer),
            )
            sent[delivery_id] = (number, customer)
    await make_sender().drain(timeout=10)
    async with sessions() as session:
        links = (await session.scalars(select(MessageLink))).all()
    mapped = {(link.customer_chat_id, link.customer_message_id): link for link in links}
    for delivery_id, (number, customer) in sent.items():
        row = await delivery(sessions, delivery_id)
        assert row.status == "sent"
        assert row.sent_at is not None
        assert row.error is None
        [message_id] = row.result["message_ids"]
        assert fake.text_of(fake.message(customer, message_id)).endswith(f"for {customer}")
        link = mapped[(customer, message_id)]
        assert (link.ticket_number, link.direction) == (number, "answer")
    assert len(links) == len(sent)


# ---------------------------------------------------------------- staff-side failures (SPEC §8)


async def test_a_long_text_goes_in_parts_and_a_retry_sends_only_the_rest(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    lines = [f"<b>{i:03d}</b> line &lt;{i}&gt; " + "x" * 60 for i in range(150)]
    delivery_id = await enqueue(sessions, clock, STAFF, "\n".join(lines))
    sender = make_sender()
    # The second part meets a 500 once: the first is not sent again.
    real, calls = sender.bot, [0]

    async def flaky(call: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise TelegramServerError(method=call, message="Internal Server Error")
        return await real(call, **kwargs)

    sender.bot = flaky  # type: ignore[assignment]
    await sender.drain(timeout=10)
    clock.offset += timedelta(minutes=5)
    await sender.drain(timeout=10)
    received = texts(fake, STAFF)
    assert len(received) >= 3
    assert all(len(text) <= 4096 for text in received)
    assert "\n".join(received) == "\n".join(f"{i:03d} line <{i}> " + "x" * 60 for i in range(150))
    row = await delivery(sessions, delivery_id)
    assert row.status == "sent"
    assert row.result is not None and len(row.result["message_ids"]) == len(received)


async def test_a_file_too_large_fails_at_once_and_its_chat_goes_on(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    fake.upload_limits.files = 100
    async with sessions() as session, session.begin():
        big = Outbox(clock).add(
            session,
            Intent(
                chat_id=ALICE,
                method=SendDocument,
                payload={
                    "chat_id": ALICE,
                    "document": {
                        "__file_b64": base64.b64encode(b"x" * 1000).decode(),
                        "filename": "e.csv",
                    },
                },
                purpose="export",
            ),
        )
        await session.flush()
        big_id = big.id
    after = await enqueue(sessions, clock, ALICE, "the next message")
    await make_sender().drain(timeout=10)
    row = await delivery(sessions, big_id)
    assert row.status == "failed" and row.attempts == 1
    assert row.error is not None and "413" in row.error
    assert (await delivery(sessions, after)).status == "sent"
    said = texts(fake, ALICE)
    assert any("e.csv" in text for text in said), said  # told, in the chat it was for


async def test_a_group_that_removed_the_bot_keeps_its_queue_until_it_is_back(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    admin = fake.add_user(7, "Admin")
    fake.add_member(STAFF, admin, admin=True)
    fake.kick_bot(STAFF, by=admin)
    first = await enqueue(sessions, clock, STAFF, "card one")
    second = await enqueue(sessions, clock, STAFF, "card two")
    sender = make_sender()
    await sender.drain(timeout=5)
    for delivery_id in (first, second):
        row = await delivery(sessions, delivery_id)
        assert row.status == "pending", row.error  # waits, never dropped
    async with sessions() as session:
        assert await DeskSettings(session).get("staff_access_lost_at")
    fake.add_bot(STAFF, by=admin, admin=True)
    async with sessions() as session, session.begin():
        await DeliveryRepo(session).due_now(STAFF, clock.now())
    sender.resume(STAFF)
    await sender.drain(timeout=10)
    assert texts(fake, STAFF) == ["card one", "card two"]
    async with sessions() as session:
        assert not await DeskSettings(session).get("staff_access_lost_at")


@pytest.mark.parametrize(("limits", "at_once"), [(FAST, 5), (Limits(), 1)])
async def test_a_group_allowed_far_more_than_telegrams_pace_gets_a_sweep_s_calls_at_once(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
    limits: Limits,
    at_once: int,
) -> None:
    """Five tickets' messages wait for the staff group. Allowed 100,000 a minute, the group's
    spacing is microseconds: one sweep takes all five, each slot a moment after the last,
    rather than one per round trip. At Telegram's pace a sweep takes one."""
    for number in range(1, 6):
        await enqueue(sessions, clock, STAFF, f"ticket {number}", subject=number)
    sender = make_sender(limits)
    claimed: list[int] = []
    claim = sender._claim

    async def counted(chosen: Any, *args: Any) -> Any:
        claimed.append(len(chosen))
        return await claim(chosen, *args)

    sender._claim = counted  # type: ignore[method-assign]
    await sender._dispatch_due()
    assert claimed == [at_once]
    if at_once > 1:  # (at Telegram's pace the rest would take seconds)
        await sender.drain(timeout=30)
        assert sorted(texts(fake, STAFF)) == [f"ticket {n}" for n in range(1, 6)]


async def test_a_failing_outcome_handler_costs_only_its_own_effect(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    """A sweep's outcomes are recorded together without savepoints; a handler that fails
    sends them again one by one, each handler in a savepoint: every delivery is recorded as
    sent (nothing goes twice), and only the failing handler's own writes are undone."""
    outcomes = desk_outcomes(clock)

    async def note(session: AsyncSession, row: Delivery, ids: list[int]) -> None:
        await DeskSettings(session).put(f"noted:{row.chat_id}", "yes")
        await session.flush()  # written before it fails: undone with the savepoint
        if row.chat_id == BOB:
            raise RuntimeError("this handler is broken for Bob")

    outcomes.on_sent(note)
    sender = make_sender(outcomes=outcomes)
    ids = [await enqueue(sessions, clock, chat, f"to {chat}") for chat in (ALICE, BOB, CAROL)]
    await sender.drain(timeout=10)
    for delivery_id in ids:
        assert (await delivery(sessions, delivery_id)).status == "sent"
    for chat in (ALICE, BOB, CAROL):
        assert texts(fake, chat) == [f"to {chat}"]  # each sent once
    async with sessions() as session:
        settings = DeskSettings(session)
        assert await settings.get(f"noted:{ALICE}") == "yes"
        assert await settings.get(f"noted:{CAROL}") == "yes"
        assert await settings.get(f"noted:{BOB}") is None  # undone alone


async def test_a_group_found_back_is_told_even_when_its_record_is_tried_again(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    """The staff group took the bot back: the first message that reaches it again says so
    (managers are told). When that record is undone because another outcome's handler failed,
    the record made again still says so."""
    outcomes = desk_outcomes(clock)

    async def back(session: AsyncSession, chat_id: int) -> None:
        await DeskSettings(session).put(f"back:{chat_id}", "yes")

    async def broken_for_alice(session: AsyncSession, row: Delivery, ids: list[int]) -> None:
        if row.chat_id == ALICE:
            raise RuntimeError("this handler is broken for Alice")

    outcomes.on_access_back(back)
    outcomes.on_sent(broken_for_alice)
    sender = make_sender(outcomes=outcomes)
    sender._locked_out.add(STAFF)  # it had refused the bot (see the test above)
    await enqueue(sessions, clock, STAFF, "card")
    await enqueue(sessions, clock, ALICE, "to Alice")
    await sender.drain(timeout=10)
    assert texts(fake, STAFF) == ["card"] and texts(fake, ALICE) == ["to Alice"]
    async with sessions() as session:
        assert await DeskSettings(session).get(f"back:{STAFF}") == "yes"
    assert STAFF not in sender._locked_out


async def test_outcomes_that_cannot_be_recorded_do_not_stall_their_chat(
    fake: FakeTelegram,
    sessions: async_sessionmaker[AsyncSession],
    clock: ShiftedClock,
    make_sender: Callable[..., Sender],
) -> None:
    first = await enqueue(sessions, clock, ALICE, "one")
    sender = make_sender()
    broken = [True]
    keep = sender._keep

    async def flaky(outcomes: Any, *, isolated: bool) -> None:
        if broken[0]:
            raise RuntimeError("database is locked")
        await keep(outcomes, isolated=isolated)

    sender._keep = flaky  # type: ignore[method-assign]
    async with running(sender):
        await eventually(lambda: texts(fake, ALICE) == ["one"], "not sent")
        await eventually(lambda: sender._outcomes != [], "no outcome waiting")
        broken[0] = False  # the database is back: the outcome is recorded, the chat goes on
        second = await enqueue(sessions, clock, ALICE, "two")
        sender.wake()
        await eventually(lambda: texts(fake, ALICE) == ["one", "two"], "the chat stalled")
    assert (await delivery(sessions, first)).status == "sent"
    assert (await delivery(sessions, second)).status == "sent"
    assert len(send_calls(fake)) == 2  # recorded late, never sent twice


@given(
    st.lists(
        st.tuples(st.sampled_from(["", "b", "i", "code"]), st.text(min_size=0, max_size=300)),
        max_size=40,
    ),
    st.integers(min_value=20, max_value=500),
)
def test_split_html_keeps_every_character_and_the_limit(
    pieces: list[tuple[str, str]], limit: int
) -> None:
    text = "".join(
        (f"<{tag}>{html.quote(body)}</{tag}>" if tag else html.quote(body)) for tag, body in pieces
    )
    parts = split_html(text, limit)
    assert all(visible_length(part) <= limit for part in parts)
    visible = "".join(body for _, body in pieces)
    joined = "".join(strip_tags(part) for part in parts)
    assert joined.replace("\n", "").strip() == visible.replace("\n", "").strip() or (
        not visible.strip() and not joined.strip()
    )
    for part in parts:  # every part is well-formed on its own
        assert part.count("<b>") == part.count("</b>")
        assert part.count("<code>") == part.count("</code>")


def test_a_long_text_of_emoji_is_cut_as_telegram_counts_it() -> None:
    """Telegram counts UTF-16 code units: 3,000 emoji are 6,000 of them, too many for one
    message although they are 3,000 characters."""
    text = "<b>Outage</b> " + "🔥" * 3000
    delivery = Delivery(method="SendMessage", payload={"chat_id": ALICE, "text": text})
    calls = build_calls(delivery, delivery.payload)
    assert len(calls) == 2
    assert all(visible_length(call.text) <= PART_LIMIT for call in calls)  # type: ignore[attr-defined]
    assert "".join(strip_tags(call.text) for call in calls).count("🔥") == 3000  # type: ignore[attr-defined]
