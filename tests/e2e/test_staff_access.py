"""Staff access follows the staff group at once (issue 10, item 6): Telegram's
``chat_member`` update for a removal is believed immediately — no five minutes of a cached
"yes, a member" — for buttons, answers and edits alike, and a member added back can act
again."""

from __future__ import annotations

from typing import Any

import pytest

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID
from tests.waiting import eventually

NO_LONGER_ACTIVE = "Эта кнопка уже неактивна."


@pytest.fixture
def public_staff_group(fake: FakeTelegram) -> None:
    """A public group anyone may read and write in: so someone who is no longer a member can
    still press its buttons and post there, as Telegram allows, and only the bot stops them."""
    group = fake.groups[STAFF_CHAT_ID]
    group.username = "ecomet_staff"
    group.join_to_send_messages = False


def _card_text(fake: FakeTelegram, card: dict[str, Any]) -> str:
    return fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))


async def _card_shows(fake: FakeTelegram, card: dict[str, Any], *fragments: str) -> str:
    def shown() -> str | None:
        text = _card_text(fake, card)
        return text if all(f in text for f in fragments) else None

    return await eventually(
        shown, lambda: f"card never showed {fragments}:\n{_card_text(fake, card)}"
    )


async def test_a_removed_member_is_refused_at_once_and_an_added_one_acts_again(
    fake: FakeTelegram,
    alice: FakeUser,
    anna: FakeUser,
    boris_staff: FakeUser,
    public_staff_group: None,
    start_bot,
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    first = await c.open_request(topic="First")
    assert "chat_member" in fake.allowed_updates  # the bot asks for them (it has polled)
    card_1 = await fake.next_message(STAFF_CHAT_ID)
    second = await c.open_request(topic="Second")
    card_2 = await fake.next_message(STAFF_CHAT_ID)
    # Anna is staff: she takes the first ticket and answers it (the bot now knows her as a
    # member, and used to trust that for five minutes).
    take = fake.press(anna, card_1, "Взять")
    assert "теперь у вас" in (await fake.wait_for_answer(take))["text"]
    await c.expect("Anna", f"#{first}")
    answer = fake.send_text(anna, "First answer.", chat_id=STAFF_CHAT_ID, reply_to=card_1)
    await c.expect("First answer.")
    copy = c.last
    assert copy is not None

    # An administrator removes her from the group; Telegram tells the bot (chat_member).
    fake.remove_member(STAFF_CHAT_ID, anna, by=boris_staff)
    # At once: her press, her answer and her edit change nothing.
    take = fake.press(anna, card_2, "Взять")
    refused = await fake.wait_for_answer(take)
    assert refused["text"] == NO_LONGER_ACTIVE and refused["show_alert"]
    fake.send_text(anna, "Answer after removal.", chat_id=STAFF_CHAT_ID, reply_to=card_1)
    fake.edit_text(anna, answer, "Edited after removal.")
    close = fake.press(anna, card_1, "Закрыть")
    assert (await fake.wait_for_answer(close))["text"] == NO_LONGER_ACTIVE
    await bot.expect_silence(alice.id)
    assert c.text(copy) == "First answer."  # the customer's copy was not edited
    text_2 = fake.text_of(fake.message(STAFF_CHAT_ID, card_2["message_id"]))
    assert "Исполнитель: —" in text_2 and "Статус: Новое" in text_2
    assert "Статус: В работе" in fake.text_of(fake.message(STAFF_CHAT_ID, card_1["message_id"]))
    # Boris, still a member, is not affected.
    take = fake.press(boris_staff, card_2, "Взять")
    assert "теперь у вас" in (await fake.wait_for_answer(take))["text"]
    await c.expect("Boris", f"#{second}")

    # Added back: she acts again, at once too.
    fake.add_member(STAFF_CHAT_ID, anna, by=boris_staff)
    fake.send_text(anna, "Back again.", chat_id=STAFF_CHAT_ID, reply_to=card_1)
    await c.expect("Back again.")
    fake.edit_text(anna, answer, "First answer, corrected.")
    await c.edited(copy, "First answer, corrected.")
    fake.press(anna, card_1, "Приоритет")
    await eventually(
        lambda: "P4 низкий" in str(fake.buttons(fake.message(STAFF_CHAT_ID, card_1["message_id"]))),
        "the card did not show the priority menu",
    )
    fake.press(anna, card_1, "P4 низкий")
    await _card_shows(fake, card_1, "P4 низкий")


async def test_leaving_and_promotion_reach_the_bot_as_chat_member_updates(
    fake: FakeTelegram, anna: FakeUser, boris_staff: FakeUser, public_staff_group: None, start_bot
) -> None:
    """The emulator tells an administrator bot of joins, leaves, removals and promotions."""
    await start_bot()
    fake.send_command(anna, "/queue", chat_id=STAFF_CHAT_ID)
    await fake.next_message(STAFF_CHAT_ID)  # the bot has polled, asking for chat_member
    since = len(fake.update_history)
    fake.add_member(STAFF_CHAT_ID, anna, admin=True)  # promoted
    fake.remove_member(STAFF_CHAT_ID, anna)  # leaves by herself
    fake.add_member(STAFF_CHAT_ID, anna)  # joins again
    fake.remove_member(STAFF_CHAT_ID, anna, by=boris_staff)  # removed by an administrator
    changes = [u["chat_member"] for u in fake.update_history[since:] if "chat_member" in u]
    assert [(u["old_chat_member"]["status"], u["new_chat_member"]["status"]) for u in changes] == [
        ("member", "administrator"),
        ("administrator", "left"),
        ("left", "member"),
        ("member", "kicked"),
    ]
    assert [u["from"]["id"] for u in changes] == [anna.id, anna.id, anna.id, boris_staff.id]
    await fake.wait_updates_consumed()
