"""Texts of the resolution: the confirmation question, reminders, disputes, ratings."""

from __future__ import annotations

from aiogram import html
from aiogram.utils.i18n import gettext as _


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
