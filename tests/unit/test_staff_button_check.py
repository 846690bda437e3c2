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
from hypothesis import given
from hypothesis import strategies as st

from bot.handlers.staff.buttons import genuine_button
from bot.handlers.staff.gate import fit_answer

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


@given(st.text(max_size=400))
def test_a_press_answer_fits_telegrams_200_code_units(text: str) -> None:
    fitted = fit_answer(text)
    units = len(fitted.encode("utf-16-le")) // 2
    assert units <= 200
    if len(text.encode("utf-16-le")) // 2 <= 200:
        assert fitted == text
    else:
        assert fitted.endswith("…") and text.startswith(fitted[:-1])


def test_emoji_count_twice_in_a_press_answer() -> None:
    text = "🔗" * 150  # 150 characters, 300 code units
    fitted = fit_answer(text)
    assert fitted == "🔗" * 99 + "…"
