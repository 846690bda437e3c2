"""Texts of the staff side: the card, history, queue, search results, saved answers, what staff
are told about their own messages and presses; and the customer notices that staff actions
cause. ``notice_views()`` is this side's table for ``bot/views/render.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.db.models import Macro
from bot.domain.sla import Sla, SlaState
from bot.domain.tickets import CloseReason, Priority, Status
from bot.keyboards import staff as kb
from bot.services import notices_staff as notices
from bot.services.rendering import Rendered
from bot.services.staff.lookup import FoundTicket, HistoryEvent, QueuePage, TicketHistory
from bot.views import tickets as ticket_views
from bot.views.formatting import day_time, duration, when
from bot.views.labels import STATUS_ICON, close_reason_label, priority_label, status_label
from bot.views.render import RenderFn

quote = html.quote


def _status(value: str | None) -> str:
    try:
        return status_label(Status(value)) if value else "—"
    except ValueError:
        return value or "—"


def _priority(value: str | None) -> str:
    try:
        return priority_label(Priority(int(value))) if value else "—"
    except ValueError:
        return value or "—"


def event_text(event: HistoryEvent) -> str:
    kinds = {
        "created": lambda: _("registered the request"),
        "status": lambda: _("status: {old} → {new}").format(
            old=_status(event.old), new=_status(event.new)
        ),
        "assignee": lambda: _("assignee: {old} → {new}").format(
            old=quote(event.old or "—"), new=quote(event.new or "—")
        ),
        "priority": lambda: _("priority: {old} → {new}").format(
            old=_priority(event.old), new=_priority(event.new)
        ),
        "line": lambda: _("line: {old} → {new}").format(old=event.old, new=event.new),
        "customer_message": lambda: _("wrote to the request"),
        "staff_message": lambda: (
            _("answered the customer (the answer of problem #{problem})").format(
                problem=event.problem
            )
            if event.problem is not None
            else _("answered the customer")
        ),
        "problem": lambda: (
            _("linked to problem #{problem}").format(problem=event.new)
            if event.old is None
            else _("moved from problem #{old} to #{new}").format(old=event.old, new=event.new)
            if event.new is not None
            else _("unlinked from problem #{problem}").format(problem=event.old)
        ),
        "incidents_linked": lambda: _("linked as incidents of this problem: {numbers}").format(
            numbers=", ".join(f"#{n}" for n in event.numbers) or event.new
        ),
        "incident_unlinked": lambda: _("#{number} unlinked from this problem").format(
            number=event.new
        ),
        "broadcast": lambda: ngettext(
            "sent an answer to {count} linked customer",
            "sent an answer to {count} linked customers",
            int(event.new or 0),
        ).format(count=event.new),
        "resolved_all": lambda: ngettext(
            "resolved {count} linked request with this answer",
            "resolved {count} linked requests with this answer",
            int(event.new or 0),
        ).format(count=event.new),
        "dispute": lambda: _("disputed the answer: {text}").format(text=quote(event.text or "")),
        "answer_withdrawn": lambda: _("made the album a note: nothing reached the customer"),
        "note": lambda: _("internal note: {text}").format(text=quote(event.text or "")),
        "delivery_failed": lambda: _("a message could not be delivered"),
        "close_reason": lambda: close_reason_label(CloseReason(event.new or "by_staff")),
    }
    render = kinds.get(event.type)
    return render() if render else quote(event.type)


def history(history: TicketHistory, locale: str) -> str:
    lines = [_("<b>History of #{number}</b>").format(number=history.number), ""]
    events = history.events
    for event in events[-40:]:
        actor = event.actor if event.actor is not None else _("the desk")
        lines.append(
            f"<code>{when(event.at, history.tz, locale)}</code> {quote(actor)}: {event_text(event)}"
        )
    if len(events) > 40:
        lines.insert(2, _("(the last 40 of {count} events)").format(count=len(events)))
    if history.problem is not None:
        lines += ["", _("🔗 Linked to problem /ticket_{number}").format(number=history.problem)]
    if history.incidents:
        lines += ["", _("🧩 Linked requests ({count}):").format(count=len(history.incidents))]
        lines += [
            f"{STATUS_ICON[status]} /ticket_{number} · {status_label(status)}"
            for number, status in history.incidents[:100]
        ]
        if len(history.incidents) > 100:
            lines.append(_("… and {count} more").format(count=len(history.incidents) - 100))
    return "\n".join(lines)


def queue(page: QueuePage, locale: str) -> str:
    if not page.rows:
        return _("The queue is empty: no open requests.")
    lines = [
        _("<b>Open requests: {total}</b> (by priority, then SLA deadline, then age)").format(
            total=page.total
        ),
        "",
    ]
    for row in page.rows:
        assignee = quote(row.assignee) if row.assignee else _("nobody")
        topic = quote(row.topic if len(row.topic) <= 50 else row.topic[:49] + "…")
        tariff = (
            _("tariff {tariff}").format(tariff=quote(row.tariff.name(locale))) + " · "
            if row.tariff is not None
            else ""
        )
        line = (
            f"{STATUS_ICON[row.status]} <b>#{row.number}</b> {priority_label(row.priority)} · "
            f"{tariff}{topic}\n    {status_label(row.status)} · {assignee} · "
            + _("waiting {age}").format(age=duration(row.age, locale))
        )
        if row.sla is not None:
            line += "\n    " + sla_line(row.sla, locale, page.tz)
        lines.append(line)
    return "\n".join(lines)


def found(query: str, rows: Sequence[FoundTicket]) -> str:
    if not rows:
        return _("Nothing found for “{query}”.").format(query=quote(query))
    lines = [_("<b>Found for “{query}”:</b>").format(query=quote(query)), ""]
    lines += [
        f"{STATUS_ICON[row.status]} <b>#{row.number}</b> · {quote(row.topic)} · "
        f"{status_label(row.status)}"
        for row in rows
    ]
    lines += ["", _("/ticket N shows a request with its history.")]
    return "\n".join(lines)


# -- what staff are told about their own messages ------------------------------------------------


def kept_inside(forum: bool) -> str:
    """A reply to a staff-side message that may have been meant for the customer."""
    if forum:
        return _(
            "✍ Kept inside as a note: it replies to a staff-side message. To answer the "
            "customer, write in this topic without replying, or reply to their message."
        )
    return _(
        "✍ Kept inside as a note: it replies to a staff-side message. To answer the "
        "customer, reply to the card or to their message."
    )


def edit_not_carried() -> str:
    return _(
        "This answer has already gone to the customer: an edit cannot make it a note. "
        "The customer's copy stays as it was."
    )


def album_already_sent() -> str:
    return _(
        "The rest of this album had already gone to the customer; this part is kept as a note."
    )


# -- what the customer is told -----------------------------------------------------------------


def taken_notice(number: int, agent: str) -> str:
    return _("👤 {agent} from support is now working on your request #{number}.").format(
        agent=quote(agent), number=number
    )


def ask_info_notice(number: int) -> str:
    return _(
        "❔ Support needs more information about your request #{number}. "
        "Please answer support's question in this chat."
    ).format(number=number)


def resolved_notice(number: int) -> str:
    return _(
        "✅ Your request #{number} is marked as resolved. If something is still wrong, "
        "just write here and we will continue."
    ).format(number=number)


def closed_notice(number: int) -> str:
    return _(
        "🔒 Your request #{number} is closed by support. For a new problem, send /new."
    ).format(number=number)


def sla_line(sla: Sla, locale: str, tz: ZoneInfo | None = None) -> str:
    """The first-response SLA on a card (with ``tz``: and when it is due)."""
    if sla.answered:
        mark = "✅" if sla.state is SlaState.MET else "❗"
        return _("SLA: answered in {time} {mark}").format(
            time=duration(sla.elapsed, locale), mark=mark
        )
    if sla.state is SlaState.BREACHED:
        return _("SLA: ❗ overdue by {time}").format(time=duration(-sla.left, locale))
    if sla.state is SlaState.PAUSED:
        return _("SLA: ⏸ paused while waiting for the customer ({time} left)").format(
            time=duration(sla.left, locale)
        )
    icon = "⚠️" if sla.state is SlaState.NEAR else "⏱"
    if tz is not None and sla.due is not None:
        return _("SLA: {icon} {time} left to the first response, due {due}").format(
            icon=icon, time=duration(sla.left, locale), due=day_time(sla.due, tz, locale)
        )
    return _("SLA: {icon} {time} left to the first response").format(
        icon=icon, time=duration(sla.left, locale)
    )


def sla_alert(number: int, sla: Sla, locale: str) -> str:
    if sla.state is SlaState.BREACHED:
        return _("❗ #{number}: the first response is overdue (target {target}).").format(
            number=number, target=duration(sla.target, locale)
        )
    return _("⚠️ #{number}: {time} left to the first response.").format(
        number=number, time=duration(sla.left, locale)
    )


def undelivered(notice: notices.Undelivered) -> str:
    reasons = {
        notices.UndeliveredReason.BLOCKED: lambda: _("the customer has blocked the bot"),
        notices.UndeliveredReason.DELETED: lambda: _("the customer's account is deleted"),
        notices.UndeliveredReason.REFUSED: lambda: _("Telegram refused it: {error}").format(
            error=quote(notice.error)
        ),
    }
    return _("⚠️ A message to the customer of #{number} was not delivered: {reason}.").format(
        number=notice.number, reason=reasons[notice.reason]()
    )


# -- answers to the card's buttons (plain text: a callback answer is not HTML) -------------------


def link_hint(number: int) -> str:
    return _("Pick the problem #{number} belongs to, or write /link PROBLEM {number}.").format(
        number=number
    )


def stale_button() -> str:
    return _("This button is no longer active.")


def not_staff() -> str:
    return _("Only members of the staff group can be assigned.")


def taken(number: int) -> str:
    return _("#{number} is yours now.").format(number=number)


def assigned(number: int, name: str) -> str:
    return _("#{number} is assigned to {name}.").format(number=number, name=name)


def priority_set(number: int, priority: Priority) -> str:
    return _("Priority of #{number}: {priority}.").format(number=number, priority=priority.name)


def line_set(number: int, line: int) -> str:
    return _("#{number} is on line {line}.").format(number=number, line=line)


def info_asked(number: int, *, forum: bool) -> str:
    if forum:
        hint = _("#{number} waits for the customer. Write your question in this topic.")
    else:
        hint = _("#{number} waits for the customer. Write your question as a reply to the card.")
    return hint.format(number=number)


def write_the_answer() -> str:
    return _("Write the answer as a reply to my message.")


def resolved(number: int) -> str:
    return _("#{number} is resolved.").format(number=number)


def closed(number: int) -> str:
    return _("#{number} is closed.").format(number=number)


# -- saved answers ------------------------------------------------------------------------------


def macro_listing(items: Sequence[Macro], *, for_ticket: int | None = None) -> str:
    """The saved answers; ``for_ticket``: their buttons send one to that ticket's customer."""
    if not items:
        return _(
            "No saved answers yet. Add one: /macro_add Title | Hello, {name}! About #{number}…"
        )
    lines = [_("<b>Saved answers</b>"), ""]
    for macro in items:
        lines.append(f"<b>{quote(macro.title)}</b>\n{quote(macro.body)}")
    lines += ["", _("/macro_add, /macro_edit Title | Text; /macro_del Title")]
    text = "\n\n".join(lines)
    if for_ticket is not None:
        text += "\n\n" + _("Press one to send it to the customer of #{number}.").format(
            number=for_ticket
        )
    return text


def macro_saved(title: str, *, created: bool) -> str:
    if created:
        return _("Saved “{title}”.").format(title=quote(title))
    return _("Updated “{title}”.").format(title=quote(title))


def macro_deleted(title: str) -> str:
    return _("Deleted “{title}”.").format(title=quote(title))


def macro_sent(title: str, number: int) -> str:
    # The answer to the press: plain text (not HTML), so the title goes as it is.
    return _("Sent “{title}” to #{number}.").format(title=title, number=number)


# -- the notices' table -------------------------------------------------------------------------


def _json(markup: InlineKeyboardMarkup) -> dict[str, Any]:
    return markup.model_dump(mode="json", exclude_none=True)


def card(notice: notices.Card, locale: str) -> Rendered:
    sla = sla_line(notice.sla, locale, notice.tz) if notice.sla is not None else None
    return Rendered(
        ticket_views.staff_card(notice, sla=sla, locale=locale),
        _json(kb.card(notice.number, notice.status)),
    )


def resolve_prompt(notice: notices.ResolvePrompt, locale: str) -> Rendered:
    text = _(
        "✍ Reply to this message with the answer for #{number}: the customer gets it with "
        "the buttons Solved / Not solved."
    ).format(number=notice.number)
    if not notice.has_last:
        return Rendered(text)
    text += "\n" + _("Or use your last message to the customer as the answer.")
    return Rendered(text, _json(kb.resolve_prompt(notice.number)))


def notice_views() -> Mapping[type, RenderFn]:
    """The staff side's notices, for ``ViewRenderer``."""
    return {
        notices.Card: card,
        notices.ResolvePrompt: resolve_prompt,
        notices.KeptInside: lambda notice, locale: Rendered(kept_inside(notice.forum)),
        notices.EditNotCarried: lambda notice, locale: Rendered(edit_not_carried()),
        notices.AlbumAlreadySent: lambda notice, locale: Rendered(album_already_sent()),
        notices.Undelivered: lambda notice, locale: Rendered(undelivered(notice)),
        notices.Taken: lambda notice, locale: Rendered(taken_notice(notice.number, notice.agent)),
        notices.InfoAsked: lambda notice, locale: Rendered(ask_info_notice(notice.number)),
        notices.ClosedByStaff: lambda notice, locale: Rendered(closed_notice(notice.number)),
        TicketHistory: lambda notice, locale: Rendered(history(notice, locale)),
    }
