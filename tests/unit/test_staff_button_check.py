"""A press on a card that the sender has not recorded yet: genuine buttons pass, forged data
does not (Telegram supplies the pressed message itself; only the data can be forged)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Bot
from aiogram.types import (
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    User,
)

from bot.handlers.staff.buttons import genuine_button

STAFF = Chat(id=-1001, type="supergroup", title="Staff")
AGENT = User(id=2001, is_bot=False, first_name="Anna")
US = User(id=123456, is_bot=True, first_name="Desk")
MARKUP = InlineKeyboardMarkup(
    inline_keyboard=[
        [InlineKeyboardButton(text="Take", callback_data="st:take:7:0")],
        [InlineKeyboardButton(text="Site", url="https://example.com")],
    ]
)


def press(
    data: str, *, sender: User = US, markup: InlineKeyboardMarkup | None = MARKUP
) -> CallbackQuery:
    message = Message(
        message_id=50,
        date=datetime(2026, 11, 26, tzinfo=UTC),
        chat=STAFF,
        from_user=sender,
        text="#7",
        reply_markup=markup,
    )
    return CallbackQuery(
        id="1", from_user=AGENT, chat_instance="x", message=message, data=data
    ).as_(Bot("123456:TEST-TOKEN"))


def test_a_button_of_our_own_message_is_genuine() -> None:
    assert genuine_button(press("st:take:7:0"))


def test_forged_data_or_a_message_not_ours_is_not() -> None:
    assert not genuine_button(press("st:take:8:0"))  # another ticket
    assert not genuine_button(press("st:close:7:0"))  # not a button of this message
    assert not genuine_button(press("st:take:7:0", sender=AGENT))  # someone else's message
    assert not genuine_button(press("st:take:7:0", markup=None))
