"""Views of what the desk itself reports: forum topic names, and managers' word about the bot's
access to the staff group."""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import html
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.keyboards.problems import burst_link
from bot.services.coalescing import DigestEntry, DigestHeader
from bot.services.desk_outcomes import FileTooLarge, StaffGroupBack, StaffGroupLost, TopicTitle
from bot.services.rendering import Rendered
from bot.views.labels import STATUS_ICON, kind_label, priority_label
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


def digest_header(notice: DigestHeader, _locale: str) -> Rendered:
    """The head of a burst digest in the General topic (or the plain group)."""
    messages = ngettext("{count} new message", "{count} new messages", notice.messages).format(
        count=notice.messages
    )
    tickets = ngettext("{count} request", "{count} requests", notice.tickets).format(
        count=notice.tickets
    )
    text = _(
        "⚡ <b>A burst: {messages} on {tickets}.</b> What they say is below; each request's "
        "card and topic follow as Telegram's limits allow. Reply quoting a line to answer "
        "that customer."
    ).format(messages=messages, tickets=tickets)
    if notice.new < 2:
        return Rendered(text)
    # Many new requests at once are often one outage: one press links them (SPEC §13).
    return Rendered(text, burst_link().model_dump(mode="json", exclude_none=True))


def digest_entry(notice: DigestEntry, _locale: str) -> Rendered:
    """``🆕 /ticket_12 · P2 · Incident · «Cannot pay» · Alice: first words…`` for a new ticket,
    ``💬 /ticket_12 · Alice: …`` for what a customer added; each number a command to tap."""
    name = html.bold(html.quote(notice.customer))
    if notice.new:
        head = "🆕 /ticket_{number} · {priority} · {kind} · «{topic}» · {name}".format(
            number=notice.number,
            priority=priority_label(notice.priority) if notice.priority else "",
            kind=kind_label(notice.kind) if notice.kind else "",
            topic=html.quote(notice.topic or ""),
            name=name,
        )
    else:
        head = f"💬 /ticket_{notice.number} · {name}"
    words = [html.quote(line) for line in notice.words]
    if notice.files:
        words.append(
            ngettext(
                "📎 {count} photo or file (in the ticket's topic)",
                "📎 {count} photos or files (in the ticket's topic)",
                notice.files,
            ).format(count=notice.files)
        )
    if len(words) == 1:
        return Rendered(f"{head}: {words[0]}")
    return Rendered("\n".join([f"{head}:", *(f"  › {line}" for line in words)]))


def desk_views() -> Mapping[type, RenderFn]:
    return {
        DigestHeader: digest_header,
        DigestEntry: digest_entry,
        TopicTitle: topic_title,
        StaffGroupLost: staff_group_lost,
        StaffGroupBack: staff_group_back,
        FileTooLarge: file_too_large,
    }
