"""Keyboards of the staff group: the card's buttons and their sub-menus."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.domain.tickets import Priority, Status
from bot.keyboards import Arg, Id, Page
from bot.views.labels import priority_label


class Op(StrEnum):
    TAKE = "take"
    ASSIGN_MENU = "am"
    ASSIGN = "as"
    PRIORITY_MENU = "pm"
    PRIORITY = "pr"
    LINE_MENU = "lm"
    LINE = "ln"
    ASK_INFO = "ask"
    RESOLVE = "res"
    RESOLVE_LAST = "rl"
    CLOSE = "cls"
    HISTORY = "his"
    BACK = "back"
    LINK_MENU = "lkm"  # SPEC §13: link the ticket to a problem
    LINK = "lk"
    UNLINK = "ulk"


class StaffCb(CallbackData, prefix="st"):
    op: Op
    number: Id
    arg: Arg = 0


class QueuePageCb(CallbackData, prefix="q"):
    page: Page


class MacroCb(CallbackData, prefix="mc"):
    macro: Id
    number: Id  # the ticket to send it to


def card(number: int, status: Status) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if status is Status.CLOSED:
        builder.button(text=_("📜 History"), callback_data=StaffCb(op=Op.HISTORY, number=number))
        return builder.as_markup()
    builder.button(text=_("🙋 Take"), callback_data=StaffCb(op=Op.TAKE, number=number))
    builder.button(text=_("👥 Assign"), callback_data=StaffCb(op=Op.ASSIGN_MENU, number=number))
    builder.button(text=_("⚡ Priority"), callback_data=StaffCb(op=Op.PRIORITY_MENU, number=number))
    builder.button(text=_("🎚 Line"), callback_data=StaffCb(op=Op.LINE_MENU, number=number))
    builder.button(text=_("❔ Ask info"), callback_data=StaffCb(op=Op.ASK_INFO, number=number))
    builder.button(text=_("✅ Resolve"), callback_data=StaffCb(op=Op.RESOLVE, number=number))
    builder.button(text=_("🔒 Close"), callback_data=StaffCb(op=Op.CLOSE, number=number))
    builder.button(text=_("📜 History"), callback_data=StaffCb(op=Op.HISTORY, number=number))
    builder.button(
        text=_("🔗 Link to problem"), callback_data=StaffCb(op=Op.LINK_MENU, number=number)
    )
    builder.adjust(2)
    return builder.as_markup()


def _back(builder: InlineKeyboardBuilder, number: int) -> None:
    builder.button(text=_("← Back"), callback_data=StaffCb(op=Op.BACK, number=number))


def assignees(number: int, staff: Sequence[tuple[int, str]]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for user_id, name in staff:
        builder.button(text=name, callback_data=StaffCb(op=Op.ASSIGN, number=number, arg=user_id))
    _back(builder, number)
    builder.adjust(2)
    return builder.as_markup()


def priorities(number: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for priority in Priority:
        builder.button(
            text=priority_label(priority),
            callback_data=StaffCb(op=Op.PRIORITY, number=number, arg=int(priority)),
        )
    _back(builder, number)
    builder.adjust(2)
    return builder.as_markup()


def lines(number: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for line in (1, 2, 3):
        builder.button(
            text=_("Line {line}").format(line=line),
            callback_data=StaffCb(op=Op.LINE, number=number, arg=line),
        )
    _back(builder, number)
    builder.adjust(3)
    return builder.as_markup()


def queue_pages(page: int, pages: int) -> InlineKeyboardMarkup | None:
    if pages <= 1:
        return None
    builder = InlineKeyboardBuilder()
    if page > 0:
        builder.button(text="←", callback_data=QueuePageCb(page=page - 1))
    builder.button(text=f"{page + 1}/{pages}", callback_data=QueuePageCb(page=page))
    if page + 1 < pages:
        builder.button(text="→", callback_data=QueuePageCb(page=page + 1))
    return builder.as_markup()


def macros(number: int, items: Sequence[tuple[int, str]]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for macro_id, title in items:
        builder.button(text=title, callback_data=MacroCb(macro=macro_id, number=number))
    builder.adjust(1)
    return builder.as_markup()


def resolve_prompt(number: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("Use my last message as the answer"),
        callback_data=StaffCb(op=Op.RESOLVE_LAST, number=number),
    )
    return builder.as_markup()
