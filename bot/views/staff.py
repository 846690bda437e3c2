"""Texts of the staff side: history, queue, search results, notes; and the customer notices
that staff actions cause."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.utils.i18n import gettext as _

from bot.domain.sla import Sla, SlaState
from bot.domain.tickets import CloseReason, Priority, Status
from bot.views.formatting import duration, when
from bot.views.labels import STATUS_ICON, close_reason_label, priority_label, status_label

quote = html.quote


@dataclass(frozen=True, slots=True)
class EventLine:
    at: datetime
    actor: str
    type: str
    old: str | None
    new: str | None
    text: str | None = None


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


def event_text(event: EventLine) -> str:
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
        "staff_message": lambda: _("answered the customer"),
        "answer_withdrawn": lambda: _("made the album a note: nothing reached the customer"),
        "note": lambda: _("internal note: {text}").format(text=quote(event.text or "")),
        "delivery_failed": lambda: _("a message could not be delivered"),
        "close_reason": lambda: close_reason_label(CloseReason(event.new or "by_staff")),
    }
    render = kinds.get(event.type)
    return render() if render else quote(event.type)


def history(number: int, events: Sequence[EventLine], *, tz: ZoneInfo, locale: str) -> str:
    lines = [_("<b>History of #{number}</b>").format(number=number), ""]
    for event in events[-40:]:
        lines.append(
            f"<code>{when(event.at, tz, locale)}</code> {quote(event.actor)}: {event_text(event)}"
        )
    if len(events) > 40:
        lines.insert(2, _("(the last 40 of {count} events)").format(count=len(events)))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class QueueLine:
    number: int
    priority: Priority
    status: Status
    topic: str
    assignee: str | None
    age: timedelta
    sla: Sla | None = None


def queue(rows: Sequence[QueueLine], *, page: int, pages: int, total: int, locale: str) -> str:
    if not rows:
        return _("The queue is empty: no open requests.")
    lines = [_("<b>Open requests: {total}</b> (by priority, then age)").format(total=total), ""]
    for row in rows:
        assignee = quote(row.assignee) if row.assignee else _("nobody")
        topic = quote(row.topic if len(row.topic) <= 50 else row.topic[:49] + "…")
        line = (
            f"{STATUS_ICON[row.status]} <b>#{row.number}</b> {priority_label(row.priority)} · "
            f"{topic}\n    {status_label(row.status)} · {assignee} · "
            + _("waiting {age}").format(age=duration(row.age, locale))
        )
        if row.sla is not None:
            line += "\n    " + sla_line(row.sla, locale)
        lines.append(line)
    return "\n".join(lines)


def found(query: str, rows: Sequence[tuple[int, Status, str]]) -> str:
    if not rows:
        return _("Nothing found for “{query}”.").format(query=quote(query))
    lines = [_("<b>Found for “{query}”:</b>").format(query=quote(query)), ""]
    lines += [
        f"{STATUS_ICON[status]} <b>#{number}</b> · {quote(topic)} · {status_label(status)}"
        for number, status, topic in rows
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


def sla_line(sla: Sla, locale: str) -> str:
    """The first-response SLA on a card."""
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
