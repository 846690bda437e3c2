"""Ticket texts: the staff card, the customer's notices, the draft summary, /my."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.domain.tickets import Kind, Status
from bot.services.accounts import AccountInfo
from bot.services.notices_customer import AfterHours, Registered
from bot.services.notices_desk import CoalescedEdit, CoalescedHeader
from bot.services.notices_staff import Card
from bot.services.rendering import Rendered
from bot.views.formatting import clock_time, opening, when
from bot.views.labels import STATUS_ICON, kind_label, priority_label, status_label
from bot.views.render import RenderFn

# Telegram counts 4096 characters after entity parsing; the card's own lines take < 600.
CARD_DESCRIPTION_LIMIT = 3300


quote = html.quote


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def staff_card(card: Card, *, sla: str | None, locale: str) -> str:
    """The ticket's card (``sla``: its SLA line, already rendered, for an open ticket)."""
    username = f" @{quote(card.customer_username)}" if card.customer_username else ""
    if card.customer_email is not None:
        # By e-mail: no Telegram profile to link to; the address is what staff look for.
        customer = (
            f"✉️ {quote(card.customer_name)} · <code>{quote(card.customer_email)}</code>"
            f" · {card.customer_locale}"
        )
    else:
        customer = (
            f'<a href="tg://user?id={card.customer_id}">{quote(card.customer_name)}</a>'
            f"{username} · <code>{card.customer_id}</code> · {card.customer_locale}"
        )
    account = f"<code>{quote(card.account_number)}</code>" if card.account_number else "—"
    if card.organisation:
        account += f" · {quote(card.organisation)}"
    lines = [
        f"{STATUS_ICON[card.status]} <b>#{card.number}</b> · {kind_label(card.kind)} · "
        f"{priority_label(card.priority)}",
        f"<b>{quote(card.topic)}</b>",
        "",
        _("Account: {account}").format(account=account),
        *tariff_lines(card, locale),
        _("Customer: {customer}").format(customer=customer),
        _("Status: {status}").format(status=status_label(card.status)),
        _("Assignee: {assignee}").format(
            assignee=quote(card.assignee_name) if card.assignee_name else "—"
        ),
        _("Line: {line}").format(line=card.line),
        _("Opened: {when}").format(when=when(card.created_at, card.tz, locale)),
    ]
    if card.reopened:
        lines.append(_("Reopened: {count}").format(count=card.reopened))
    if card.problem is not None:
        lines.append(_("🔗 Linked to problem /ticket_{number}").format(number=card.problem))
    if card.incidents:
        lines.append(
            ngettext(
                "🧩 Problem: {count} linked request, {open} open",
                "🧩 Problem: {count} linked requests, {open} open",
                card.incidents,
            ).format(count=card.incidents, open=card.incidents_open)
        )
    if sla:
        lines.append(sla)
    if card.attachments:
        lines.append(
            ngettext(
                "📎 {count} screenshot below",
                "📎 {count} screenshots below",
                card.attachments,
            ).format(count=card.attachments)
        )
    lines += [
        "",
        f"<blockquote expandable>{quote(_clip(card.description, CARD_DESCRIPTION_LIMIT))}"
        "</blockquote>",
    ]
    return "\n".join(lines)


def tariff_lines(card: Card, locale: str) -> list[str]:
    """The ticket's tariff (SPEC §12), when the desk sells tariffs."""
    if card.tariff is None:
        return []
    name = quote(card.tariff.name(locale))
    lines = [
        _("Tariff: {tariff} · support {hours}").format(tariff=name, hours=card.tariff.hours.text)
    ]
    if card.outside_tariff:
        lines.append(
            _(
                "⚠️ Outside the tariff: {tariff} does not include this kind of request "
                "(the default tariff's hours and targets apply)."
            ).format(tariff=name)
        )
    return lines


def account_recognised(account: AccountInfo, locale: str) -> str:
    """The dialog's account step knows the number (SPEC §12)."""
    if account.tariff is not None:
        return _("✅ Account {account} — {organisation}, tariff {tariff}.").format(
            account=quote(account.number),
            organisation=quote(account.organisation),
            tariff=quote(account.tariff.name(locale)),
        )
    # The desk sells no tariffs: only the organisation means something to the customer.
    return _("✅ Account {account} — {organisation}.").format(
        account=quote(account.number), organisation=quote(account.organisation)
    )


def registered_head(notice: Registered) -> list[str]:
    """The number, topic and kind of a new request: the first lines of every channel's
    acknowledgement."""
    return [
        _("✅ Your request <b>#{number}</b> is registered.").format(number=notice.number),
        _("Topic: {topic}").format(topic=quote(notice.topic)),
        _("Kind: {kind} · priority {priority}").format(
            kind=kind_label(notice.kind), priority=priority_label(notice.priority)
        ),
    ]


def registered_after_hours(notice: Registered, locale: str) -> list[str]:
    """Out of support hours: when the team will answer (else nothing)."""
    if notice.opens_at is None:
        return []
    tz = notice.tz
    return [
        "",
        _("🌙 Support works {hours} ({zone}). We will answer from {opening}.").format(
            hours=notice.hours_text,
            zone=tz.key,
            opening=opening(notice.opens_at, notice.now, tz, locale),
        ),
    ]


def registered_notice(notice: Registered, locale: str) -> str:
    lines = [
        *registered_head(notice),
        "",
        _(
            "What happens next: a support specialist will answer in this chat. "
            "To add details, just write here — it goes to the same request. "
            "/my shows all your requests."
        ),
        *registered_after_hours(notice, locale),
    ]
    return "\n".join(lines)


def after_hours_notice(notice: AfterHours, locale: str) -> str:
    tz = notice.tz
    return _(
        "🌙 Your message is added to request #{number}. Support works {hours} ({zone}); "
        "we will answer from {opening}."
    ).format(
        number=notice.number,
        hours=notice.hours_text,
        zone=tz.key,
        opening=opening(notice.opens_at, notice.now, tz, locale),
    )


@dataclass(frozen=True, slots=True)
class DraftView:
    kind: Kind | None
    topic: str | None
    description: str | None
    account: str | None
    attachments: int
    not_taken: int = 0  # screenshots beyond the most a request keeps
    max_attachments: int = 10


def draft_summary(draft: DraftView) -> str:
    dash = "—"
    lines = [
        _("<b>Please check your request:</b>"),
        "",
        _("Kind: {kind}").format(kind=kind_label(draft.kind) if draft.kind else dash),
        _("Topic: {topic}").format(topic=quote(draft.topic or dash)),
        _("Account: {account}").format(account=quote(draft.account or dash)),
        ngettext("Screenshots: {count}", "Screenshots: {count}", draft.attachments).format(
            count=draft.attachments
        ),
        *(
            [
                ngettext(
                    "⚠️ {count} screenshot was not taken: a request keeps at most {max}.",
                    "⚠️ {count} screenshots were not taken: a request keeps at most {max}.",
                    draft.not_taken,
                ).format(count=draft.not_taken, max=draft.max_attachments)
            ]
            if draft.not_taken
            else []
        ),
        "",
        f"<blockquote expandable>{quote(_clip(draft.description or dash, 3000))}</blockquote>",
        "",
        _("Press <b>Send</b> to register it, or <b>Back</b> to change something."),
    ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TicketLine:
    number: int
    topic: str
    status: Status
    created_at: datetime
    known_problem: bool = False  # linked to a problem the team works on (SPEC §13)


def my_tickets(rows: Sequence[TicketLine], total: int, *, tz: ZoneInfo, locale: str) -> str:
    if not rows:
        return _("You have no requests yet. Send /new to create one.")
    lines = [_("<b>Your requests:</b>"), ""]
    for row in rows:
        lines.append(
            f"{STATUS_ICON[row.status]} <b>#{row.number}</b> · {quote(_clip(row.topic, 60))}\n"
            f"    {status_label(row.status)} · {when(row.created_at, tz, locale)}"
        )
        if row.known_problem and row.status is not Status.CLOSED:
            lines.append("    " + _("ℹ️ a known problem: we are working on it"))
    if total > len(rows):
        lines += [
            "",
            ngettext(
                "…and {count} earlier request.",
                "…and {count} earlier requests.",
                total - len(rows),
            ).format(count=total - len(rows)),
        ]
    return "\n".join(lines)


def coalesced_header(notice: CoalescedHeader, locale: str) -> str:
    """The head of a customer's messages joined into one (they wrote faster than the desk's
    per-customer pace): who wrote, how many, and when."""
    tz = notice.tz
    start, end = clock_time(notice.first, tz, locale), clock_time(notice.last, tz, locale)
    span = start if start == end else f"{start}–{end}"
    return ngettext(
        "💬 <b>{name}</b> · {count} message in a row, {span}:",
        "💬 <b>{name}</b> · {count} messages in a row, {span}:",
        notice.count,
    ).format(name=quote(notice.name), count=notice.count, span=span)


def coalesced_edit(notice: CoalescedEdit, locale: str) -> str:
    """A customer edited a message that reached staff joined with others: its new text."""
    heading = _("✏️ <b>{name}</b> edited a message; it now reads:").format(name=quote(notice.name))
    return f"{heading}\n{notice.html_text}"


def too_many_open(rows: Sequence[TicketLine], limit: int, *, tz: ZoneInfo, locale: str) -> str:
    """Why /new opens nothing: the customer has ``MAX_OPEN_TICKETS`` open requests already."""
    lines = [
        ngettext(
            "You have {count} open request.", "You have {count} open requests.", len(rows)
        ).format(count=len(rows))
        + " "
        + ngettext(
            "One customer can have at most {limit} open request at once.",
            "One customer can have at most {limit} open requests at once.",
            limit,
        ).format(limit=limit),
        _(
            "To add something to one of them, just write here or reply to its messages. "
            "If one is no longer needed, close it with a button below, then send /new again."
        ),
        "",
    ]
    for row in rows:
        lines.append(
            f"{STATUS_ICON[row.status]} <b>#{row.number}</b> · {quote(_clip(row.topic, 60))}\n"
            f"    {status_label(row.status)} · {when(row.created_at, tz, locale)}"
        )
    return "\n".join(lines)


def slow_down_notice(per_minute: int) -> str:
    return ngettext(
        "🐢 You are writing faster than {count} message a minute. Nothing is lost: everything "
        "you send reaches support, joined together. Please slow down a little so we can "
        "follow you.",
        "🐢 You are writing faster than {count} messages a minute. Nothing is lost: everything "
        "you send reaches support, joined together. Please slow down a little so we can "
        "follow you.",
        per_minute,
    ).format(count=per_minute)


def notice_views() -> Mapping[type, RenderFn]:
    """The notices of registering and relaying requests, for ``ViewRenderer``."""
    return {
        Registered: lambda notice, locale: Rendered(registered_notice(notice, locale)),
        AfterHours: lambda notice, locale: Rendered(after_hours_notice(notice, locale)),
        CoalescedHeader: lambda notice, locale: Rendered(coalesced_header(notice, locale)),
        CoalescedEdit: lambda notice, locale: Rendered(coalesced_edit(notice, locale)),
    }
