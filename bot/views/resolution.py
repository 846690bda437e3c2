"""Texts of the resolution: the confirmation question, reminders, disputes, ratings; and the
views of the resolution's notices (``notice_views``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram import html
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.keyboards import customer as kb
from bot.services import notices_customer as customer
from bot.services import notices_desk as desk
from bot.services.rendering import Rendered
from bot.views.formatting import duration
from bot.views.render import RenderFn
from bot.views.staff import sla_alert


def confirm_question_text(number: int, days: str) -> str:
    return _(
        "✅ Support has answered your request #{number}. Is the problem solved?\n"
        "Without an answer, the request closes by itself after {days}."
    ).format(number=number, days=days)


def reminder(number: int, days: str) -> str:
    return _(
        "⏰ Is the problem of request #{number} solved? Please answer with a button; "
        "without an answer the request closes by itself after {days}."
    ).format(number=number, days=days)


def still_resolved(number: int) -> str:
    return _(
        "We passed your message on to support. Is the problem of request #{number} solved?"
    ).format(number=number)


def ask_dispute_reason(number: int) -> str:
    return _(
        "Sorry to hear that. Please tell us in one message what is still wrong with #{number} — "
        "it goes to support, and the request is reopened."
    ).format(number=number)


def reopened(number: int) -> str:
    return _("🔄 Request #{number} is reopened; support will get back to you.").format(
        number=number
    )


def closed_confirmed(number: int) -> str:
    return _("🔒 Request #{number} is closed. Thank you!").format(number=number)


def closed_auto(number: int) -> str:
    return _(
        "🔒 Request #{number} was closed automatically: we did not hear back after the answer. "
        "If the problem comes back, send /new."
    ).format(number=number)


def closed_by_customer(number: int) -> str:
    return _("🔒 You closed request #{number}.").format(number=number)


def ask_close_reason(number: int) -> str:
    return _(
        "Why is request #{number} no longer needed? One short message, please "
        "(or /cancel to keep it open)."
    ).format(number=number)


def ask_rating(number: int) -> str:
    return _("How would you rate the answer to request #{number}?").format(number=number)


def ask_comment() -> str:
    return _("Thank you! Anything to add? Write a comment, or press the button.")


def thanks_for_rating() -> str:
    return _("Thank you for your rating!")


def staff_dispute(number: int, reason: str) -> str:
    return _("🔄 The customer says #{number} is not solved: {reason}").format(
        number=number, reason=html.quote(reason)
    )


def staff_customer_closed(number: int, reason: str) -> str:
    return _("🔒 The customer closed #{number}: {reason}").format(
        number=number, reason=html.quote(reason)
    )


def staff_low_rating(number: int, score: int, comment: str | None) -> str:
    text = _("⚠️ Low rating for #{number}: {score}/5.").format(number=number, score=score)
    if comment:
        text += " " + _("Comment: {comment}").format(comment=html.quote(comment))
    return text


def staff_rating_comment(number: int, comment: str) -> str:
    return _("💬 Rating comment for #{number}: {comment}").format(
        number=number, comment=html.quote(comment)
    )


def resolve_prompt(number: int, has_last: bool) -> str:
    text = _(
        "✍ Reply to this message with the answer for #{number}: the customer gets it with "
        "the buttons Solved / Not solved."
    ).format(number=number)
    if has_last:
        text += "\n" + _("Or use your last message to the customer as the answer.")
    return text


def _json(markup: InlineKeyboardMarkup) -> dict[str, Any]:
    return markup.model_dump(mode="json", exclude_none=True)


def _confirm_question(notice: customer.ConfirmQuestion, locale: str) -> Rendered:
    days = duration(notice.auto_close_after, locale)
    return Rendered(
        confirm_question_text(notice.number, days), _json(kb.confirm_solution(notice.number))
    )


def _reminder(notice: customer.Reminder, locale: str) -> Rendered:
    return Rendered(
        reminder(notice.number, duration(notice.left, locale)),
        _json(kb.confirm_solution(notice.number)),
    )


def _still_resolved(notice: customer.StillResolved, locale: str) -> Rendered:
    return Rendered(still_resolved(notice.number), _json(kb.confirm_solution(notice.number)))


def _ask_rating(notice: customer.AskRating, locale: str) -> Rendered:
    return Rendered(ask_rating(notice.number), _json(kb.rating(notice.number)))


def notice_views() -> Mapping[type, RenderFn]:
    """The resolution's notices to customers and its posts for staff, for ``ViewRenderer``."""
    return {
        customer.ConfirmQuestion: _confirm_question,
        customer.Reminder: _reminder,
        customer.StillResolved: _still_resolved,
        customer.AskRating: _ask_rating,
        customer.Reopened: lambda notice, locale: Rendered(reopened(notice.number)),
        customer.ClosedConfirmed: lambda notice, locale: Rendered(closed_confirmed(notice.number)),
        customer.ClosedAuto: lambda notice, locale: Rendered(closed_auto(notice.number)),
        customer.ClosedByCustomer: lambda notice, locale: Rendered(
            closed_by_customer(notice.number)
        ),
        desk.DisputeReason: lambda notice, locale: Rendered(
            staff_dispute(notice.number, notice.reason)
        ),
        desk.CustomerClosed: lambda notice, locale: Rendered(
            staff_customer_closed(notice.number, notice.reason)
        ),
        desk.LowRating: lambda notice, locale: Rendered(
            staff_low_rating(notice.number, notice.score, notice.comment)
        ),
        desk.RatingComment: lambda notice, locale: Rendered(
            staff_rating_comment(notice.number, notice.comment)
        ),
        desk.SlaAlert: lambda notice, locale: Rendered(
            sla_alert(notice.number, notice.sla, locale)
        ),
    }
