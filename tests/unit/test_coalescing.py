"""Coalescing what the staff group is sent (SPEC §8), in process: the app's own services, outcome
handlers and dispatcher (``bot/app.py``) over a migrated SQLite file, and a real :class:`Sender`
talking to the emulated Bot API (which copies real customer messages, checks HTML and
``copyMessages`` ids, and can answer 429 as Telegram does). Customers' messages are relayed the
way the app relays them (``TicketService.relay`` with ``relay_item`` of a real message); staff
messages are real updates fed to the dispatcher.
"""

from __future__ import annotations

import html
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiogram import Bot, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message, Update
from sqlalchemy import select

from bot.app import create_desk_config, create_dispatcher, create_i18n, create_services
from bot.clock import ShiftedClock
from bot.config import load_settings
from bot.db.engine import Database, migrate
from bot.db.models import Delivery, MessageLink, Ticket
from bot.db.repositories import LinkRepo, TicketRepo, UserRepo
from bot.delivery.intents import Intent, Refs
from bot.delivery.limiter import Limits, RateLimiter
from bot.delivery.outcomes import Outcomes
from bot.delivery.sender import Sender
from bot.domain.tickets import Kind
from bot.emulator import FakeTelegram
from bot.emulator.world import Call
from bot.handlers.customer.common import relay_item
from bot.services.coalescing import DIGEST_LIMIT
from bot.services.outgoing import TicketTags
from bot.services.tickets import Draft
from tests.unit.test_staff_callbacks import Idle
from tests.waiting import eventually

TOKEN = "123456:TEST-TOKEN"
STAFF = -1001234567890
ANNA = 2001  # staff
ALICE, BOB = 1001, 1002
CROWD = list(range(1101, 1131))  # thirty customers of a burst
FAST = Limits(
    private_per_second=1000, private_burst=1000, group_per_minute=100_000, global_per_second=1000
)


def group_limits(per_minute: float) -> Limits:
    """Telegram's spacing in a group (a call a second), ``per_minute`` messages a minute."""
    return Limits(
        private_per_second=1000,
        private_burst=1000,
        global_per_second=1000,
        group_per_minute=per_minute,
    )


class Desk:
    """The app's services and dispatcher over one database, and senders to the emulator."""

    def __init__(self, fake: FakeTelegram, url: str, *, forum: bool) -> None:
        assert fake.url
        settings = load_settings(
            _env_file=None,
            bot_token=TOKEN,
            staff_chat_id=STAFF,
            manager_ids=frozenset(),
            database_url=url,
            default_locale="en",
            support_hours="00:00-24:00",
        )
        self.fake = fake
        self.database = Database(url)
        self.clock = ShiftedClock()
        self.bot = Bot(
            TOKEN,
            session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)),
            default=DefaultBotProperties(parse_mode="HTML"),
        )
        i18n = create_i18n(settings)
        self.config = create_desk_config(settings)
        self.config.staff_is_forum = forum
        self.services = create_services(
            settings, self.database, self.clock, i18n, self.config, self.bot
        )
        self.dispatcher = create_dispatcher(
            settings,
            database=self.database,
            clock=self.clock,
            sender=Idle(),  # type: ignore[arg-type]
            i18n=i18n,
            services=self.services,
        )
        self.senders: list[Sender] = []
        self.updates = 0

    def sender(self, limits: Limits = FAST) -> Sender:
        """A sender with the outcome handlers the running app registers (bot/app.py)."""
        services = self.services
        sender = Sender(
            bot=self.bot,
            session_factory=self.database.writer,
            read_session_factory=self.database.reader,
            clock=self.clock,
            limiter=RateLimiter(limits),
            outcomes=services.coalescer.register(services.desk_outcomes.register(Outcomes())),
        )
        self.senders.append(sender)
        return sender

    async def close(self) -> None:
        for sender in self.senders:
            await sender.stop(timeout=5)
        await self.bot.session.close()
        await self.database.dispose()

    # -- customers ---------------------------------------------------------------------------

    async def open_ticket(
        self, customer_id: int, description: str = "Nothing loads since the morning."
    ) -> int:
        """A request registered as the dialog registers it: the card and the customer's notice
        go to the outbox."""
        now = self.clock.now()
        async with self.database.writer() as session, session.begin():
            customer = await UserRepo(session).upsert(
                user_id=customer_id,
                first_name=self.fake.users[customer_id].first_name,
                last_name=None,
                username=None,
                language_code="en",
                now=now,
            )
            draft = Draft(
                key=uuid.uuid4().hex,
                kind=Kind.INCIDENT,
                topic="Cannot pay",
                description=description,
                account_number="12345678",
            )
            registration = await self.services.tickets.register(session, customer, draft, "en")
            return registration.ticket.number

    async def relay(self, customer_id: int, number: int, messages: list[dict[str, Any]]) -> None:
        """The customer's messages (as the emulator stored them) relayed to staff as the
        follow-up handler does."""
        items = [relay_item(Message.model_validate(m, context={"bot": self.bot})) for m in messages]
        async with self.database.writer() as session, session.begin():
            customer = await UserRepo(session).get(customer_id)
            ticket = await TicketRepo(session).get(number)
            assert customer is not None and ticket is not None
            await self.services.tickets.relay(session, customer, ticket, items, locale="en")

    async def say(self, customer_id: int, number: int, *texts: str) -> list[int]:
        """The customer writes ``texts`` in their chat; each is relayed on its own."""
        messages = [self.fake.send_text(customer_id, text) for text in texts]
        for message in messages:
            await self.relay(customer_id, number, [message])
        return [int(m["message_id"]) for m in messages]

    # -- staff -------------------------------------------------------------------------------

    async def feed(self, message: dict[str, Any]) -> None:
        """A message someone sent (as the emulator delivers it) fed to the bot's dispatcher."""
        self.updates += 1
        update = Update.model_validate(
            {"update_id": self.updates, "message": message}, context={"bot": self.bot}
        )
        await self.dispatcher.feed_update(self.bot, update)

    # -- what happened -----------------------------------------------------------------------

    async def deliveries(self, **where: Any) -> list[Delivery]:
        async with self.database.reader() as session:
            query = select(Delivery).order_by(Delivery.id)
            for column, value in where.items():
                query = query.where(getattr(Delivery, column) == value)
            return list((await session.scalars(query)).all())

    async def last_delivery_id(self) -> int:
        rows = await self.deliveries()
        return rows[-1].id if rows else 0

    async def ticket(self, number: int) -> Ticket:
        async with self.database.reader() as session:
            ticket = await session.get(Ticket, number)
            assert ticket is not None
            return ticket

    def group_calls(self, method: str, since: int = 0) -> list[Call]:
        """The successful calls of ``method`` to the staff group (``since``: a call index)."""
        return [
            c
            for c in self.fake.calls[since:]
            if c.method == method and c.ok and c.params.get("chat_id") == STAFF
        ]

    def group_posts(self, since: int = 0) -> list[Call]:
        """Every successful call that posted in the staff group, in order."""
        posting = ("sendMessage", "copyMessage", "copyMessages", "sendMediaGroup", "sendPhoto")
        return [
            c
            for c in self.fake.calls[since:]
            if c.method in posting and c.ok and c.params.get("chat_id") == STAFF
        ]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def url(backend_url: str) -> str:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    migrate(url)
    return url


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    telegram = FakeTelegram(token=TOKEN)
    await telegram.start()
    telegram.add_user(ALICE, "Alice", started=True)
    telegram.add_user(BOB, "Bob", started=True)
    for index, user_id in enumerate(CROWD, start=1):
        telegram.add_user(user_id, f"Customer{index:02d}", started=True)
    anna = telegram.add_user(ANNA, "Anna")
    telegram.add_group(STAFF, "Staff", members=[anna])
    yield telegram
    await telegram.stop()


@pytest_asyncio.fixture
async def plain(fake: FakeTelegram, url: str) -> AsyncIterator[Desk]:
    desk = Desk(fake, url, forum=False)
    try:
        yield desk
    finally:
        await desk.close()


@pytest_asyncio.fixture
async def forum(fake: FakeTelegram, url: str) -> AsyncIterator[Desk]:
    fake.groups[STAFF].is_forum = True
    desk = Desk(fake, url, forum=True)
    try:
        yield desk
    finally:
        await desk.close()


async def settle(desk: Desk) -> None:
    """Send until nothing waits (some deliveries, an album, wait a moment before they may go)."""
    sender = desk.sender()

    async def settled() -> bool:
        await sender.drain(timeout=5)
        return not await desk.deliveries(status="pending")

    await eventually(settled, "deliveries still pending", within=15)


async def posted_ticket(desk: Desk, customer_id: int = ALICE) -> int:
    """A ticket whose card (and, in a forum, topic) is in the group already."""
    number = await desk.open_ticket(customer_id)
    await desk.sender().drain(timeout=10)
    ticket = await desk.ticket(number)
    assert ticket.card_message_id is not None
    assert (ticket.staff_thread_id is not None) is desk.config.staff_is_forum
    return number


# ---------------------------------------------------------------- joining in a plain group


WORDS = ["the page is blank", "after login", "<b>& still nothing", "tried twice", "please help"]


async def test_a_plain_group_gets_five_relays_as_one_text_under_a_header(plain: Desk) -> None:
    number = await posted_ticket(plain)
    card = (await plain.ticket(number)).card_message_id
    since = len(plain.fake.calls)
    await plain.say(ALICE, number, *WORDS)
    relays = await plain.deliveries(ticket_number=number, purpose="relay")
    assert [r.method for r in relays] == ["CopyMessage"] * 5  # queued one by one

    await plain.sender().drain(timeout=10)

    (joined,) = plain.group_posts(since)  # one message of the group's budget, not five
    assert joined.method == "sendMessage"
    assert joined.params["reply_parameters"]["message_id"] == card
    header, *lines = plain.fake.text_of(joined.result).split("\n")
    assert "Alice" in header and "5 messages" in header, header
    assert lines == WORDS  # in order, the customer's own text (escaped, shown as written)
    assert "&lt;b&gt;&amp; still nothing" in joined.params["text"]

    head, *rest = await plain.deliveries(ticket_number=number, purpose="relay")
    assert head.status == "sent"
    assert head.result == {"message_ids": [joined.result["message_id"]]}
    assert [r.status for r in rest] == ["merged"] * 4
    assert all(r.result == {"merged_into": head.id} for r in rest)
    # The joined message belongs to the ticket: a staff reply to it finds the customer.
    async with plain.database.reader() as session:
        found = await LinkRepo(session).ticket_of_staff_message(STAFF, joined.result["message_id"])
    assert found == number
    before = await plain.last_delivery_id()
    reply = plain.fake.send_text(ANNA, "Fixed, try again", chat_id=STAFF, reply_to=joined.result)
    await plain.feed(reply)
    copies = [
        d for d in await plain.deliveries(chat_id=ALICE, method="CopyMessage") if d.id > before
    ]
    assert [(d.payload["from_chat_id"], d.payload["message_id"]) for d in copies] == [
        (STAFF, reply["message_id"])
    ]


async def test_each_tickets_relays_are_joined_apart(plain: Desk) -> None:
    first = await posted_ticket(plain, ALICE)
    second = await posted_ticket(plain, BOB)
    since = len(plain.fake.calls)
    await plain.say(ALICE, first, "a1", "a2")
    await plain.say(BOB, second, "b1", "b2", "b3")
    await plain.sender().drain(timeout=10)
    texts = sorted(plain.fake.text_of(c.result).split("\n")[1:] for c in plain.group_posts(since))
    assert texts == [["a1", "a2"], ["b1", "b2", "b3"]]


# ---------------------------------------------------------------- joining in a forum


async def test_a_forum_with_room_gets_one_copy_messages_and_every_copy_is_mapped(
    forum: Desk,
) -> None:
    number = await posted_ticket(forum)
    topic = (await forum.ticket(number)).staff_thread_id
    since = len(forum.fake.calls)
    sources = await forum.say(ALICE, number, *WORDS)
    await forum.sender().drain(timeout=10)

    (call,) = forum.group_posts(since)
    assert call.method == "copyMessages"
    assert call.params["from_chat_id"] == ALICE
    assert call.params["message_ids"] == sources  # in order
    assert call.params["message_thread_id"] == topic
    copies = [int(item["message_id"]) for item in call.result]
    shown = [forum.fake.message(STAFF, copy) for copy in copies]
    assert [forum.fake.text_of(m) for m in shown] == WORDS
    head, *rest = await forum.deliveries(ticket_number=number, purpose="relay")
    assert (head.status, head.method, head.result) == (
        "sent",
        "CopyMessages",
        {"message_ids": copies},
    )
    assert all(r.status == "merged" and r.result == {"merged_into": head.id} for r in rest)
    async with forum.database.reader() as session:
        links = (
            await session.scalars(
                select(MessageLink)
                .where(MessageLink.ticket_number == number, MessageLink.direction == "relay")
                .order_by(MessageLink.id)
            )
        ).all()
    assert [(link.customer_message_id, link.staff_message_id) for link in links] == list(
        zip(sources, copies, strict=True)
    )


async def test_a_forum_short_of_room_joins_texts_within_the_budget(
    forum: Desk, fake: FakeTelegram
) -> None:
    number = await posted_ticket(forum)
    topic = (await forum.ticket(number)).staff_thread_id
    await forum.say(ALICE, number, *WORDS)
    fake.api.limiter.limits.group = [(60.0, 3)]  # Telegram answers 429 past 3 a minute
    fake.enforce_limits = True
    since = len(fake.calls)
    sender = forum.sender(group_limits(3))
    await sender.drain(timeout=2)

    (joined,) = forum.group_posts(since)  # five copies would not fit in the room left
    assert joined.method == "sendMessage"
    assert joined.params["message_thread_id"] == topic
    assert forum.fake.text_of(joined.result).split("\n")[1:] == WORDS
    assert fake.rate_limited == 0
    assert sender.limiter.room(STAFF) == 2  # one message of the three taken


async def test_a_forum_short_of_room_copies_only_what_the_budget_takes(
    forum: Desk, fake: FakeTelegram
) -> None:
    number = await posted_ticket(forum)
    photos = [fake.send_photo(ALICE) for _ in range(5)]
    for photo in photos:
        await forum.relay(ALICE, number, [photo])
    fake.api.limiter.limits.group = [(60.0, 3)]
    fake.enforce_limits = True
    since = len(fake.calls)
    sender = forum.sender(group_limits(3))
    await sender.drain(timeout=2)

    (call,) = forum.group_posts(since)
    ids = [int(p["message_id"]) for p in photos]
    assert call.method == "copyMessages" and call.params["message_ids"] == ids[:3]
    assert fake.rate_limited == 0
    assert sender.limiter.room(STAFF) == 0  # the minute's three messages, none over
    relays = await forum.deliveries(ticket_number=number, purpose="relay")
    assert [r.status for r in relays] == ["sent", "merged", "merged", "pending", "pending"]
    assert all(r.attempts == 0 for r in relays[3:])  # waiting, untouched


# ---------------------------------------------------------------- what is never joined


async def relay_of_another_customer(desk: Desk, number: int, customer_id: int) -> int:
    """A relay of ``customer_id`` queued in ticket ``number``'s stream, in the shape the app
    gives relays (TicketService._relay_copy); returns the customer's message id."""
    message = desk.fake.send_text(customer_id, "not alice")
    async with desk.database.writer() as session, session.begin():
        desk.services.outbox.add(
            session,
            Intent(
                chat_id=STAFF,
                method=methods.CopyMessage,
                payload={
                    "chat_id": STAFF,
                    "from_chat_id": customer_id,
                    "message_id": message["message_id"],
                },
                purpose="relay",
                subject=number,
                refs=Refs(party=customer_id, joins=True),
                tags=TicketTags(customer_message_ids=[message["message_id"]], text="not alice"),
            ),
        )
    return int(message["message_id"])


async def test_another_customer_or_another_ticket_is_never_taken_in(
    plain: Desk, fake: FakeTelegram
) -> None:
    number = await posted_ticket(plain, ALICE)
    other = await posted_ticket(plain, BOB)
    since = len(fake.calls)
    await plain.say(ALICE, number, "one", "two")
    (bobs_own,) = await plain.say(BOB, other, "bob's own")
    bobs = await relay_of_another_customer(plain, number, BOB)
    (three,) = await plain.say(ALICE, number, "three")
    await settle(plain)

    posts = plain.group_posts(since)
    alices = [c for c in posts if c.params.get("from_chat_id") != BOB]
    assert [c.method for c in alices] == ["sendMessage", "copyMessage"]
    assert fake.text_of(alices[0].result).split("\n")[1:] == ["one", "two"]
    assert alices[1].params["message_id"] == three  # Bob's message stood between
    bobs_posts = [c for c in posts if c.params.get("from_chat_id") == BOB]
    assert sorted(c.params["message_id"] for c in bobs_posts) == sorted([bobs, bobs_own])
    assert all(c.method == "copyMessage" for c in bobs_posts)
    statuses = Counter(d.status for d in await plain.deliveries(purpose="relay"))
    assert statuses == {"sent": 4, "merged": 1}


@pytest.mark.parametrize("staff_is_forum", [False, True], ids=["plain group", "forum"])
async def test_an_album_is_never_taken_in(
    fake: FakeTelegram, url: str, staff_is_forum: bool
) -> None:
    fake.groups[STAFF].is_forum = staff_is_forum
    desk = Desk(fake, url, forum=staff_is_forum)
    try:
        number = await posted_ticket(desk)
        since = len(fake.calls)
        (one,) = await desk.say(ALICE, number, "one")
        album = [fake.send_photo(ALICE, media_group_id="g1") for _ in range(2)]
        await desk.relay(ALICE, number, album)
        (two,) = await desk.say(ALICE, number, "two")
        desk.clock.offset += timedelta(seconds=5)  # the album has waited for its parts
        await settle(desk)
        posts = desk.group_posts(since)
        assert [(c.method, c.params.get("message_id")) for c in posts] == [
            ("copyMessage", one),
            ("sendMediaGroup", None),
            ("copyMessage", two),
        ]
        assert len(posts[1].params["media"]) == 2
    finally:
        await desk.close()


async def test_a_relay_never_overtakes_an_album_still_waiting_for_its_parts(
    plain: Desk, fake: FakeTelegram
) -> None:
    number = await posted_ticket(plain)
    since = len(fake.calls)
    await plain.say(ALICE, number, "one", "two")
    album = [fake.send_photo(ALICE, media_group_id="g1") for _ in range(2)]
    await plain.relay(ALICE, number, album)
    await plain.say(ALICE, number, "three")
    await plain.sender().drain(timeout=5)  # the album is not due yet: it waits for parts
    plain.clock.offset += timedelta(seconds=5)
    await settle(plain)
    posts = plain.group_posts(since)
    shown = [
        fake.text_of(c.result).split("\n")[1:] if c.method == "sendMessage" else c.method
        for c in posts
    ]
    assert shown == [["one", "two"], "sendMediaGroup", "copyMessage"]


async def test_copy_messages_takes_only_increasing_ids(forum: Desk, fake: FakeTelegram) -> None:
    number = await posted_ticket(forum)
    first, second, third = (fake.send_text(ALICE, word) for word in ("m1", "m2", "m3"))
    since = len(fake.calls)
    for message in (first, third, second):  # relayed out of order
        await forum.relay(ALICE, number, [message])
    await forum.sender().drain(timeout=10)

    posts = forum.group_posts(since)
    assert [
        (c.method, c.params.get("message_ids") or c.params.get("message_id")) for c in posts
    ] == [
        ("copyMessages", [first["message_id"], third["message_id"]]),
        ("copyMessage", second["message_id"]),
    ]


async def test_a_relay_replying_to_a_staff_message_is_never_taken_in(
    plain: Desk, fake: FakeTelegram
) -> None:
    number = await posted_ticket(plain)
    staff_message = fake.send_text(ANNA, "what browser?", chat_id=STAFF)
    first, second = (fake.send_text(ALICE, word) for word in ("hello", "Firefox"))
    await plain.relay(ALICE, number, [first])
    async with plain.database.writer() as session, session.begin():
        plain.services.outbox.add(
            session,
            Intent(
                chat_id=STAFF,
                method=methods.CopyMessage,
                payload={
                    "chat_id": STAFF,
                    "from_chat_id": ALICE,
                    "message_id": second["message_id"],
                    "reply_parameters": {
                        "message_id": staff_message["message_id"],
                        "allow_sending_without_reply": True,
                    },
                },
                purpose="relay",
                subject=number,
                refs=Refs(party=ALICE, joins=True),
                tags=TicketTags(customer_message_ids=[second["message_id"]], text="Firefox"),
            ),
        )
    since = len(fake.calls)
    await plain.sender().drain(timeout=10)
    posts = plain.group_posts(since)
    assert [c.method for c in posts] == ["copyMessage", "copyMessage"]
    assert posts[1].params["reply_parameters"]["message_id"] == staff_message["message_id"]


# ---------------------------------------------------------------- the burst digest


DIGEST_TICKET = re.compile(r"/ticket_(\d+)")


def is_digest(call: Call) -> bool:
    return call.method == "sendMessage" and str(call.params.get("text", "")).startswith("⚡")


async def burst(desk: Desk) -> tuple[list[int], dict[int, str]]:
    """Thirty tickets: fifteen already posted with a long message of their customer queued,
    fifteen new ones with their card queued. Returns the numbers and what each customer said
    (the words a digest quotes)."""
    said: dict[int, str] = {}
    posted = []
    for customer in CROWD[:15]:
        posted.append(await desk.open_ticket(customer))
    await desk.sender().drain(timeout=20)
    for index, (customer, number) in enumerate(zip(CROWD[:15], posted, strict=True)):
        said[number] = f"w{index:02d} <b>& " + "the payment page keeps failing " * 6
        await desk.say(customer, number, said[number])
    fresh = []
    for index, customer in enumerate(CROWD[15:], start=15):
        words = f"w{index:02d} <b>& new: " + "nothing loads at all " * 6
        number = await desk.open_ticket(customer, description=words)
        said[number] = words
        fresh.append(number)
    return posted + fresh, said


def plain_words(words: str) -> str:
    return " ".join(words.split())


async def test_a_burst_is_summed_up_in_a_digest_and_nothing_is_dropped(
    forum: Desk, fake: FakeTelegram
) -> None:
    numbers, said = await burst(forum)
    fresh = set(numbers[15:])
    fake.enforce_limits = True  # Telegram's own 20 a minute, and a call a second
    since = len(fake.calls)
    sender = forum.sender(group_limits(20))

    async def digests_sent() -> bool:
        await sender.drain(timeout=0.5)
        rows = await forum.deliveries(purpose="digest")
        return bool(rows) and all(row.status == "sent" for row in rows)

    await eventually(digests_sent, "the digest was not sent", within=15)

    posts = forum.group_posts(since)
    digests = [c for c in posts if is_digest(c)]
    assert len(digests) >= 2  # thirty long lines do not fit in one message
    assert len(await forum.deliveries(purpose="digest")) == len(digests)
    assert fake.rate_limited == 0
    seen: Counter[int] = Counter()
    for call in digests:
        text = call.params["text"]
        shown = fake.text_of(call.result)
        assert len(text) <= DIGEST_LIMIT <= 4096 and len(shown) <= 4096
        assert "message_thread_id" not in call.params  # the General topic
        # The customer's "<b>&" escaped in the HTML, and shown as written.
        assert "<b>& " not in text and "&lt;b&gt;&amp; " in text
        header, *lines = shown.split("\n")
        assert "30 requests" in header, header
        for line in lines:
            (number,) = (int(n) for n in DIGEST_TICKET.findall(line))
            seen[number] += 1
            assert plain_words(said[number])[:60] in line, line
            if number in fresh:  # a new ticket: what it is, then its first words
                assert line.startswith(f"🆕 /ticket_{number} ") and "«Cannot pay»" in line, line
            else:  # what its customer added
                assert line.startswith(f"💬 /ticket_{number} "), line
    assert seen == Counter(numbers)  # every ticket, once

    # Already summed up: nothing new to add, however often it is asked.
    async with forum.database.writer() as session, session.begin():
        assert await forum.services.coalescer.digest(session, STAFF) == 0
    assert len(await forum.deliveries(purpose="digest")) == len(digests)

    # A message queued since: one further line, for that ticket alone.
    later = numbers[3]
    await forum.say(CROWD[3], later, "one more thing: the card was charged twice")
    async with forum.database.writer() as session, session.begin():
        assert await forum.services.coalescer.digest(session, STAFF) == 1
    further = (await forum.deliveries(purpose="digest"))[-1]
    assert further.status == "pending"
    assert DIGEST_TICKET.findall(further.payload["text"]) == [str(later)]
    assert "the card was charged twice" in further.payload["text"]

    # The tickets' own cards and messages still go, as the budget allows.
    fake.enforce_limits = False
    await forum.sender().drain(timeout=30)
    statuses = Counter(d.status for d in await forum.deliveries() if d.chat_id == STAFF)
    assert set(statuses) <= {"sent", "merged"}, statuses
    for number in numbers:
        ticket = await forum.ticket(number)
        assert ticket.card_message_id is not None and ticket.staff_thread_id is not None
    copied = {c.params["from_chat_id"] for c in forum.group_calls("copyMessage", since)}
    copied |= {c.params["from_chat_id"] for c in forum.group_calls("copyMessages", since)}
    assert copied == set(CROWD[:15])  # each queued customer message reached its topic
    texts = [c.params["text"] for c in forum.group_calls("sendMessage", since)]
    assert further.payload["text"] in texts


async def test_the_first_thing_a_crowded_group_gets_is_the_digest(
    forum: Desk, fake: FakeTelegram
) -> None:
    await burst(forum)
    fake.enforce_limits = True
    since = len(fake.calls)
    await forum.sender(group_limits(20)).drain(timeout=1)
    first = forum.group_posts(since)[0]
    assert is_digest(first), first.params.get("text", "")[:60]


# ---------------------------------------------------------------- replies to a digest


def line_of(text: str, number: int) -> str:
    (line,) = [line for line in text.split("\n") if f"/ticket_{number} " in line]
    return line


async def sent_digest(desk: Desk) -> dict[str, Any]:
    """Sum up what waits in a digest, send everything, and return the digest message."""
    async with desk.database.writer() as session, session.begin():
        assert await desk.services.coalescer.digest(session, STAFF) > 0
    since = len(desk.fake.calls)
    await desk.sender().drain(timeout=10)
    (digest,) = [c.result for c in desk.group_posts(since) if is_digest(c)]
    assert isinstance(digest, dict)
    return digest


async def copies_since(desk: Desk, before: int) -> dict[int, list[int]]:
    """Staff messages copied to each customer since delivery ``before``."""
    copied: dict[int, list[int]] = {}
    for row in await desk.deliveries(method="CopyMessage"):
        if row.id > before and row.chat_id > 0:
            copied.setdefault(row.chat_id, []).append(int(row.payload["message_id"]))
    return copied


async def test_a_reply_quoting_a_digest_line_goes_to_that_customer(
    plain: Desk, fake: FakeTelegram
) -> None:
    alices = await plain.open_ticket(ALICE)
    bobs = await plain.open_ticket(BOB)
    await plain.say(ALICE, alices, "my card was charged twice")
    await plain.say(BOB, bobs, "the app crashes on start")
    digest = await sent_digest(plain)
    text = fake.text_of(digest)
    assert DIGEST_TICKET.findall(text) == [str(alices), str(bobs)]

    # Quoting Bob's line: Bob gets the answer, Alice nothing.
    before = await plain.last_delivery_id()
    answer = fake.send_text(
        ANNA, "Reinstall, please", chat_id=STAFF, reply_to=digest, quote=line_of(text, bobs)
    )
    await plain.feed(answer)
    assert await copies_since(plain, before) == {BOB: [answer["message_id"]]}
    assert (await plain.ticket(bobs)).assignee_id == ANNA  # the first answer takes it
    assert (await plain.ticket(alices)).assignee_id is None

    # No quote, two tickets: whose it is is unclear, so nobody gets it.
    before = await plain.last_delivery_id()
    unclear = fake.send_text(ANNA, "Looking into it", chat_id=STAFF, reply_to=digest)
    await plain.feed(unclear)
    assert await copies_since(plain, before) == {}
    assert not [d for d in await plain.deliveries() if d.id > before and d.chat_id in (ALICE, BOB)]

    # A digest naming one ticket: a reply without a quote is for it.
    await plain.say(ALICE, alices, "and again today")
    single = await sent_digest(plain)
    assert DIGEST_TICKET.findall(fake.text_of(single)) == [str(alices)]
    before = await plain.last_delivery_id()
    refund = fake.send_text(ANNA, "Refunded", chat_id=STAFF, reply_to=single)
    await plain.feed(refund)
    assert await copies_since(plain, before) == {ALICE: [refund["message_id"]]}


# ---------------------------------------------------------------- the /ticket_N shortcut


async def test_the_ticket_shortcut_shows_the_ticket_as_the_command_does(
    plain: Desk, fake: FakeTelegram
) -> None:
    numbers = [await plain.open_ticket(ALICE) for _ in range(5)]
    numbers += [await plain.open_ticket(BOB) for _ in range(2)]
    assert numbers[-1] == 7
    await plain.sender().drain(timeout=10)

    def shown(rows: list[Delivery]) -> list[tuple[str, int | None, str, str]]:
        return [(d.purpose, d.ticket_number, d.method, str(d.payload["text"])) for d in rows]

    before = await plain.last_delivery_id()
    await plain.feed(fake.send_command(ANNA, "/ticket 7", chat_id=STAFF))
    command = [d for d in await plain.deliveries() if d.id > before]
    middle = await plain.last_delivery_id()
    await plain.feed(fake.send_command(ANNA, "/ticket_7", chat_id=STAFF))
    shortcut = [d for d in await plain.deliveries() if d.id > middle]

    assert [purpose for purpose, *_ in shown(command)] == ["card_copy", "staff_note"]
    assert all(d.ticket_number == 7 for d in command)
    assert "#7" in str(command[1].payload["text"])
    assert shown(shortcut) == shown(command)
    assert shortcut[0].payload.get("reply_markup") == command[0].payload.get("reply_markup")


async def test_a_digest_not_sent_yet_is_written_anew_with_what_arrived_since(
    forum: Desk, fake: FakeTelegram
) -> None:
    """Nothing is sent in between: the second call rewrites the waiting digest, so its header
    counts everything and each ticket is one entry — a new ticket with its description's first
    words and the message its customer added since."""
    numbers, said = await burst(forum)
    async with forum.database.writer() as session, session.begin():
        assert await forum.services.coalescer.digest(session, STAFF) == 30
    first = await forum.deliveries(purpose="digest")
    new_one = numbers[20]
    await forum.say(CROWD[20], new_one, "added: the receipt never came")
    async with forum.database.writer() as session, session.begin():
        assert await forum.services.coalescer.digest(session, STAFF) == 1
    again = await forum.deliveries(purpose="digest")
    assert [row.id for row in again] == [row.id for row in first]  # rewritten, not added to
    assert all(row.status == "pending" for row in again)
    texts = [row.payload["text"] for row in again]
    assert all("30 requests" in text and "31 new messages" in text for text in texts), [
        text.split("\n")[0] for text in texts
    ]
    shown = "\n".join(texts)
    assert Counter(int(n) for n in DIGEST_TICKET.findall(shown)) == Counter(numbers)
    entry = shown[shown.index(f"/ticket_{new_one} ") :].split("\n🆕")[0].split("\n💬")[0]
    assert plain_words(html.unescape(said[new_one]))[:40] in html.unescape(entry), entry
    assert "added: the receipt never came" in entry
