"""The staff group as a forum: a topic per ticket, the conversation inside it."""

from __future__ import annotations

import pytest

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID
from tests.waiting import eventually


@pytest.fixture
def forum(fake: FakeTelegram) -> None:
    fake.groups[STAFF_CHAT_ID].is_forum = True


def topics(fake: FakeTelegram) -> list:
    return [t for t in fake.groups[STAFF_CHAT_ID].topics.values() if not t.deleted]


async def next_post(fake: FakeTelegram) -> dict:
    """The bot's next message in the staff group, past topic service messages."""
    while True:  # each turn waits for the next message
        message = await fake.next_message(STAFF_CHAT_ID)
        if not any(key.startswith("forum_topic") for key in message):
            return message


async def test_a_topic_per_ticket_and_the_conversation_inside(
    forum: None, fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request(topic="Cannot pay", screenshots=2)
    # The customer writes at once, several times: still one topic.
    for n in range(3):
        c.say(f"more details {n}")
    card = await next_post(fake)
    assert f"#{number}" in fake.text_of(card)
    [topic] = topics(fake)
    assert topic.name == f"🆕 #{number} · Cannot pay"
    staff_calls = [
        (c.method, c.params.get("message_thread_id"), c.error)
        for c in fake.calls
        if str(c.params.get("chat_id")) == str(STAFF_CHAT_ID)
    ]
    assert card.get("message_thread_id") == topic.thread_id, (staff_calls, card)
    later = [await next_post(fake) for _ in range(5)]  # 2 screenshots + 3 texts
    assert all(m.get("message_thread_id") == topic.thread_id for m in later), [
        (fake.text_of(m), m.get("message_thread_id"), m.get("media_group_id")) for m in later
    ]
    assert [fake.text_of(m) for m in later[2:]] == [f"more details {n}" for n in range(3)]
    assert len(topics(fake)) == 1
    # Staff write in the topic: the customer gets it; a note stays inside.
    fake.send_text(
        anna, "We are looking into it.", chat_id=STAFF_CHAT_ID, thread_id=topic.thread_id
    )
    await c.expect("Anna", f"#{number}")
    await c.expect("We are looking into it.")
    fake.send_text(
        anna, "!check the payment gateway", chat_id=STAFF_CHAT_ID, thread_id=topic.thread_id
    )
    await bot.expect_silence(alice.id)
    # Its name follows the status.
    await eventually(lambda: topics(fake)[0].name.startswith("🛠"), "topic not renamed")
    # Someone deletes the topic: the next message recreates it, and goes there.
    fake.groups[STAFF_CHAT_ID].topics[topic.thread_id].deleted = True
    c.say("Are you there?")
    relayed = await next_post(fake)
    assert fake.text_of(relayed) == "Are you there?"
    [new_topic] = topics(fake)
    assert (
        new_topic.thread_id != topic.thread_id
        and relayed["message_thread_id"] == new_topic.thread_id
    )
    # The card is posted again in the new topic, with its buttons, and is the card from now on.
    new_card = await next_post(fake)
    assert new_card["message_thread_id"] == new_topic.thread_id
    assert f"#{number}" in fake.text_of(new_card) and "📜 История" in fake.buttons(new_card)
    await bot.settled()  # the new topic and card are recorded: a message there finds the ticket
    fake.send_text(anna, "Yes, here.", chat_id=STAFF_CHAT_ID, thread_id=new_topic.thread_id)
    await c.expect("Yes, here.")
    fake.press(anna, new_card, "Приоритет")
    await eventually(
        lambda: any(
            "P4" in b for b in fake.buttons(fake.message(STAFF_CHAT_ID, new_card["message_id"]))
        ),
        "the new card did not show the priority menu",
    )
    fake.press(anna, fake.message(STAFF_CHAT_ID, new_card["message_id"]), "P4")
    await eventually(
        lambda: "P4" in fake.text_of(fake.message(STAFF_CHAT_ID, new_card["message_id"])),
        "the new card was not edited",
    )


async def test_closing_closes_the_topic(
    forum: None, fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request(topic="Duplicate")
    card = await next_post(fake)
    # In a forum the question is written in the ticket's topic, and the hint says so.
    asked = fake.press(anna, card, "Запросить данные")
    assert "в этой теме" in (await fake.wait_for_answer(asked))["text"]
    await c.expect("is now working on your request")  # asking takes a new ticket
    await c.expect("more information", "support's question")
    fake.press(anna, card, "Закрыть")
    await c.expect("closed by support", f"#{number}")
    await eventually(lambda: topics(fake)[0].closed, "topic not closed")
    assert topics(fake)[0].name.startswith("🔒")


async def test_startup_says_what_rights_are_missing(fake: FakeTelegram, start_bot) -> None:
    group = fake.groups[STAFF_CHAT_ID]
    group.is_forum = True
    group.bot_rights = {**(group.bot_rights or {}), "can_manage_topics": False}
    bot = await start_bot()
    await eventually(lambda: "lacks: manage topics" in bot.log(), "no word on missing rights")
    assert "Make it an administrator with these rights" in bot.log()


async def test_startup_says_when_the_bot_is_not_an_admin(fake: FakeTelegram, start_bot) -> None:
    fake.groups[STAFF_CHAT_ID].bot_rights = None  # a plain member
    bot = await start_bot()
    await eventually(lambda: "lacks: administrator status" in bot.log(), "no word on admin")
