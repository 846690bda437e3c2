"""Telegram's limits in force (SPEC §8): the staff group takes about one message a second and
20 a minute, so a burst is coalesced — a digest of what waits, one customer's quick messages
in few messages — and nothing provokes a 429, loses a word or changes its order."""

from __future__ import annotations

import asyncio
import itertools
import re

import pytest

from bot.emulator import FakeTelegram, FakeUser
from bot.emulator.methods import RateLimits
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID
from tests.waiting import eventually

WORD = re.compile(r"\bm(\d\d)\b")
DIGEST_LINKS = "SELECT ticket_number, direction FROM message_links WHERE staff_message_id = ?"
ANSWERS = "SELECT id, chat_id, status, error FROM deliveries WHERE purpose = 'answer'"
SENT_TO = "select id, method, status, purpose, error from deliveries where chat_id = ?"


def staff_posts(fake: FakeTelegram) -> list[dict]:
    """The bot's messages in the staff group so far (topic service messages left out)."""
    state = fake.chats[STAFF_CHAT_ID]
    posts = [state.messages[i].data for i in state.bot_ids if i in state.messages]
    return [p for p in posts if not any(key.startswith("forum_topic") for key in p)]


def post_times(fake: FakeTelegram) -> list[float]:
    """When each of the bot's calls to the staff group posted (one copyMessages posts several
    messages at one moment: one call)."""
    state = fake.chats[STAFF_CHAT_ID]
    return sorted({round(state.messages[i].sent_at, 3) for i in state.bot_ids})


@pytest.fixture
def limited(fake: FakeTelegram) -> FakeTelegram:
    """Telegram's flood limits, as the emulator enforces them, from the first call on."""
    fake.enforce_limits = True
    return fake


@pytest.mark.parametrize("forum", [False, True], ids=["plain group", "forum"])
async def test_thirty_quick_messages_reach_staff_in_order_in_a_few_messages_without_a_429(
    limited: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot, forum: bool
) -> None:
    fake = limited
    fake.groups[STAFF_CHAT_ID].is_forum = forum
    bot = await start_bot(DELIVERY_GROUP_PER_MINUTE="20", DELIVERY_PRIVATE_PER_SECOND="1")
    alice_chat = Customer(fake, alice)
    number = await alice_chat.open_request(topic="Cannot pay")
    await eventually(lambda: any(f"#{number}" in fake.text_of(p) for p in staff_posts(fake)))
    before = len(staff_posts(fake))
    for n in range(1, 31):
        alice_chat.say(f"m{n:02d} the payment page keeps failing")

    def words() -> list[str] | None:
        seen = [w for p in staff_posts(fake)[before:] for w in WORD.findall(fake.text_of(p))]
        return seen if len(seen) >= 30 else None

    seen = await eventually(words, "not every message reached staff", within=60)
    assert seen == [f"{n:02d}" for n in range(1, 31)]  # each once, in the order written
    relayed = staff_posts(fake)[before:]
    # A forum keeps each message as its own copy (copyMessages); a plain group joins texts.
    sent = fake.chats[STAFF_CHAT_ID].messages
    calls = {round(sent[p["message_id"]].sent_at, 3) for p in relayed}
    assert len(calls) <= 8, len(calls)
    if not forum:
        assert len(relayed) <= 8
        assert "Alice" in fake.text_of(relayed[0])  # who wrote (and when) heads a joined text
    times = post_times(fake)
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(times)), times
    assert fake.rate_limited == 0
    # A staff reply to a coalesced message reaches its customer. Staff read before they answer:
    # by then the desk has recorded whose the message is (the copy is in the group a moment
    # before the send's outcome is committed).
    await eventually(
        lambda: bot.query(DIGEST_LINKS, relayed[-1]["message_id"]),
        "the relayed message was never linked to its ticket",
    )
    fake.send_text(anna, "Thanks, we see all of it.", chat_id=STAFF_CHAT_ID, reply_to=relayed[-1])
    await eventually(
        lambda: any(
            "Thanks, we see all of it." in fake.text_of(m) for m in fake.bot_messages(alice.id)
        ),
        "the answer did not reach the customer",
        within=20,
    )


async def test_a_burst_of_new_requests_shows_first_as_a_digest_and_a_quoted_line_is_answered(
    fake: FakeTelegram, anna: FakeUser, start_bot
) -> None:
    # The group's budget scaled down (6 a minute, in the bot and in the emulator alike) so a
    # handful of customers make a burst.
    fake.api.limiter.limits = RateLimits(group=[(1.0, 1), (60.0, 6)])
    fake.enforce_limits = True
    bot = await start_bot(DELIVERY_GROUP_PER_MINUTE="6", DELIVERY_PRIVATE_PER_SECOND="1")
    people = [fake.add_user(3000 + n, f"Customer{n}", language_code="en") for n in range(12)]
    chats = [Customer(fake, person) for person in people]
    numbers = await asyncio.gather(
        *(c.open_request(topic=f"Outage seen by {c.user.first_name}") for c in chats)
    )

    def digest() -> dict | None:
        for post in staff_posts(fake):
            named = set(re.findall(r"/ticket_(\d+)", fake.text_of(post)))
            if len(named) >= 5:
                return post
        return None

    found = await eventually(digest, "no digest of the burst", within=40)
    text = fake.text_of(found)
    # What staff see first: the digest, not one card after the other.
    assert len(staff_posts(fake)) <= 4, [fake.text_of(p)[:40] for p in staff_posts(fake)]
    # Whole numbers: "/ticket_1" is also the start of "/ticket_12".
    listed = [n for n in numbers if re.search(rf"/ticket_{n}\b", text)]
    assert len(listed) >= 5
    assert "Outage seen by" in text  # the topic of each new request
    assert fake.rate_limited == 0
    # A staff reply quoting one line of the digest goes to that line's customer only.
    target = listed[-1]
    who = chats[numbers.index(target)]
    line = next(line for line in text.splitlines() if re.search(rf"/ticket_{target}\b", line))
    # Staff read before they answer: by then the desk has recorded the digest as sent.
    await eventually(
        lambda: bot.query("SELECT 1 FROM deliveries WHERE purpose = 'digest' AND status = 'sent'"),
        "the digest was never recorded as sent",
    )
    fake.send_text(
        anna, "We know about the outage.", chat_id=STAFF_CHAT_ID, reply_to=found, quote=line
    )
    await eventually(
        lambda: any(
            "We know about the outage." in fake.text_of(m) for m in fake.bot_messages(who.id)
        ),
        lambda: (
            "the answer did not reach the customer of the quoted line; to them: "
            + repr(bot.query(SENT_TO, who.id))
            + f"; the group's last: {[fake.text_of(p)[:50] for p in staff_posts(fake)[-3:]]}"
            # Where the reply went instead, if anywhere: a link the digest's message has, and
            # every answer the desk queued.
            + f"; links of the digest: {bot.query(DIGEST_LINKS, found['message_id'])}"
            + f"; answers: {bot.query(ANSWERS)}"
        ),
        within=60,
    )
    others = [c for c in chats if c is not who]
    for other in others:
        assert not any(
            "We know about the outage." in fake.text_of(m) for m in fake.bot_messages(other.id)
        )
    # The cards follow as the budget allows (here one each 10 s): the first is on its way.
    await eventually(
        lambda: any(
            fake.text_of(p).count("#") and "/ticket_" not in fake.text_of(p)
            for p in staff_posts(fake)[staff_posts(fake).index(found) + 1 :]
        ),
        "no card followed the digest",
        within=30,
    )
    assert fake.rate_limited == 0
