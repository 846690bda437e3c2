"""Keyboards of the customer's private chat."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field

from bot.domain.tickets import Kind
from bot.keyboards import Id, Score, Step
from bot.views.labels import kind_button


class Nav(StrEnum):
    NEW = "new"
    BACK = "back"
    CANCEL = "cancel"
    SKIP = "skip"
    SEND = "send"
    LAST_ACCOUNT = "acct"


class DialogCb(CallbackData, prefix="dlg"):
    action: Nav
    q: Step = 0  # which question the button belongs to; 0: valid at any time (New request)


class KindCb(CallbackData, prefix="kind"):
    kind: Kind
    q: Step


class PickTicketCb(CallbackData, prefix="pick"):
    number: Id


class LanguageCb(CallbackData, prefix="lang"):
    code: Annotated[str, Field(max_length=8)]


LANGUAGE_NAMES = {"ru": "Русский", "en": "English"}


def _nav_row(builder: InlineKeyboardBuilder, q: int, *, back: bool = True) -> None:
    if back:
        builder.button(text=_("← Back"), callback_data=DialogCb(action=Nav.BACK, q=q))
    builder.button(text=_("✖ Cancel"), callback_data=DialogCb(action=Nav.CANCEL, q=q))


def start_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("📝 New request"), callback_data=DialogCb(action=Nav.NEW))
    return builder.as_markup()


def kinds(q: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for kind in (Kind.PROBLEM, Kind.INCIDENT, Kind.SERVICE, Kind.DEVELOPMENT):
        builder.button(text=kind_button(kind), callback_data=KindCb(kind=kind, q=q))
    _nav_row(builder, q, back=False)
    builder.adjust(1)
    return builder.as_markup()


def back_cancel(q: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _nav_row(builder, q)
    builder.adjust(2)
    return builder.as_markup()


def account(last_used: str | None, q: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if last_used:
        builder.button(
            text=_("Use {account}").format(account=last_used),
            callback_data=DialogCb(action=Nav.LAST_ACCOUNT, q=q),
        )
    _nav_row(builder, q)
    builder.adjust(1, 2) if last_used else builder.adjust(2)
    return builder.as_markup()


def screenshots(q: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Skip →"), callback_data=DialogCb(action=Nav.SKIP, q=q))
    _nav_row(builder, q)
    builder.adjust(1, 2)
    return builder.as_markup()


def confirm(q: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Send"), callback_data=DialogCb(action=Nav.SEND, q=q))
    _nav_row(builder, q)
    builder.adjust(1, 2)
    return builder.as_markup()


def pick_ticket(tickets: Sequence[tuple[int, str]]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for number, topic in tickets:
        label = topic if len(topic) <= 40 else topic[:39] + "…"
        builder.button(text=f"#{number} · {label}", callback_data=PickTicketCb(number=number))
    builder.adjust(1)
    return builder.as_markup()


def languages() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        builder.button(text=name, callback_data=LanguageCb(code=code))
    return builder.as_markup()


class ConfirmCb(CallbackData, prefix="ok"):
    number: Id
    solved: bool


class RateCb(CallbackData, prefix="rate"):
    number: Id
    score: Score  # 1..5; 0: no comment, thanks


class CloseMineCb(CallbackData, prefix="cm"):
    number: Id


def confirm_solution(number: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("👍 Solved"), callback_data=ConfirmCb(number=number, solved=True))
    builder.button(text=_("👎 Not solved"), callback_data=ConfirmCb(number=number, solved=False))
    return builder.as_markup()


def rating(number: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for score in range(1, 6):
        builder.button(text="⭐" * score, callback_data=RateCb(number=number, score=score))
    builder.adjust(5)
    return builder.as_markup()


def skip_comment(number: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("No comment"), callback_data=RateCb(number=number, score=0))
    return builder.as_markup()


def close_mine(numbers: Sequence[int]) -> InlineKeyboardMarkup | None:
    if not numbers:
        return None
    builder = InlineKeyboardBuilder()
    for number in numbers:
        builder.button(
            text=_("Close #{number}").format(number=number),
            callback_data=CloseMineCb(number=number),
        )
    builder.adjust(3)
    return builder.as_markup()
