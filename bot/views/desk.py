"""Views of what the desk itself reports: forum topic names, and managers' word about the bot's
access to the staff group."""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import html
from aiogram.utils.i18n import gettext as _

from bot.services.desk_outcomes import FileTooLarge, StaffGroupBack, StaffGroupLost, TopicTitle
from bot.services.rendering import Rendered
from bot.views.labels import STATUS_ICON
from bot.views.render import RenderFn


def topic_title(notice: TopicTitle, _locale: str) -> Rendered:
    """``✅ #12 · Cannot log in``: the status shows in the list of topics (128 characters)."""
    return Rendered(f"{STATUS_ICON[notice.status]} #{notice.number} · {notice.topic}"[:128])


def staff_group_lost(notice: StaffGroupLost, _locale: str) -> Rendered:
    text = _(
        "⚠️ The bot can no longer post to the staff group ({chat_id}): it was removed or lost "
        "its rights. Nothing is lost: new tickets and customers' messages wait in the queue "
        "and will be delivered as soon as the bot is back in the group as an administrator."
    ).format(chat_id=notice.chat_id)
    if notice.error:
        text += "\n" + html.quote(notice.error[:300])
    return Rendered(text)


def staff_group_back(notice: StaffGroupBack, _locale: str) -> Rendered:
    return Rendered(
        _(
            "✅ The bot is back in the staff group ({chat_id}); what waited is being delivered."
        ).format(chat_id=notice.chat_id)
    )


def file_too_large(notice: FileTooLarge, _locale: str) -> Rendered:
    megabytes = notice.size / 1_048_576
    size = (
        _("{size} MB").format(size=f"{megabytes:.1f}")
        if megabytes >= 1
        else _("{size} KB").format(size=max(1, round(notice.size / 1024)))
    )
    return Rendered(
        _("⚠️ {name} ({size}) was not sent: Telegram does not take files this large.").format(
            name=html.quote(notice.filename), size=size
        )
    )


def desk_views() -> Mapping[type, RenderFn]:
    return {
        TopicTitle: topic_title,
        StaffGroupLost: staff_group_lost,
        StaffGroupBack: staff_group_back,
        FileTooLarge: file_too_large,
    }
