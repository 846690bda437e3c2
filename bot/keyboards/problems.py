"""Keyboards of problems and their incidents (SPEC §13): the card's Link menu, the offers under
a problem's answer, and the burst digest's one press."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.keyboards import Arg, Id
from bot.keyboards.staff import Op, StaffCb


class ProblemOp(StrEnum):
    TELL_ALL = "tell"  # send the answer (arg: its message id) to every linked customer
    RESOLVE_ALL = "resolve"  # resolve the open incidents with the problem's answer


class ProblemCb(CallbackData, prefix="pb"):
    op: ProblemOp
    number: Id  # the problem
    arg: Arg = 0


class BurstCb(CallbackData, prefix="bl"):
    """Under a burst digest: link its new requests to one problem (the requests are the ones
    the pressed message names: Telegram gives the message as it is, a client cannot change it)."""

    op: str = "link"


def link_menu(
    number: int, problems: Sequence[tuple[int, str, int]], linked_to: int | None
) -> InlineKeyboardMarkup:
    """The card's Link menu: the problems to link ``number`` to (the one it is linked to now
    marked), and Unlink when linked."""
    builder = InlineKeyboardBuilder()
    for problem, topic, incidents in problems:
        label = f"#{problem} · {topic[:32]}" + (f" · 🧩{incidents}" if incidents else "")
        if problem == linked_to:
            label = "✅ " + label
        builder.button(text=label, callback_data=StaffCb(op=Op.LINK, number=number, arg=problem))
    if linked_to is not None:
        builder.button(
            text=_("✂️ Unlink from #{problem}").format(problem=linked_to),
            callback_data=StaffCb(op=Op.UNLINK, number=number),
        )
    builder.button(text=_("← Back"), callback_data=StaffCb(op=Op.BACK, number=number))
    builder.adjust(1)
    return builder.as_markup()


def tell_all(problem: int, message_id: int, customers: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=ngettext(
            "📣 Tell the {count} linked customer",
            "📣 Tell all {count} linked customers",
            customers,
        ).format(count=customers),
        callback_data=ProblemCb(op=ProblemOp.TELL_ALL, number=problem, arg=message_id),
    )
    return builder.as_markup()


def resolve_all(problem: int, incidents: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=ngettext(
            "✅ Resolve the {count} linked request",
            "✅ Resolve all {count} linked requests",
            incidents,
        ).format(count=incidents),
        callback_data=ProblemCb(op=ProblemOp.RESOLVE_ALL, number=problem),
    )
    return builder.as_markup()


def burst_link() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🔗 Link these new requests to one problem"), callback_data=BurstCb())
    return builder.as_markup()
