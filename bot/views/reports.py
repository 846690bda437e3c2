"""The managers' summary as text, numbers and durations in the manager's language."""

from __future__ import annotations

from datetime import date, timedelta

from aiogram import html
from aiogram.utils.i18n import gettext as _
from babel.dates import format_date
from babel.numbers import format_decimal

from bot.domain.tickets import CloseReason, Kind, Priority
from bot.services.reports import Summary
from bot.views.formatting import duration
from bot.views.labels import close_reason_label, kind_label, priority_label


def _time(value: timedelta | None, locale: str) -> str:
    return duration(value, locale) if value is not None else "—"


def summary_text(summary: Summary, locale: str) -> str:
    day = format_date(summary.day, "d MMMM y", locale=locale)
    kinds = ", ".join(
        f"{kind_label(k)}: {summary.opened_by_kind[k]}" for k in Kind if k in summary.opened_by_kind
    )
    priorities = ", ".join(
        f"{p.name}: {summary.opened_by_priority[p]}"
        for p in Priority
        if p in summary.opened_by_priority
    )
    closed_total = sum(summary.closed.values())
    closed = ", ".join(
        f"{close_reason_label(r)}: {summary.closed[r]}" for r in CloseReason if r in summary.closed
    )
    backlog_total = sum(summary.backlog.values())
    backlog = ", ".join(
        f"{priority_label(p)}: {summary.backlog[p]}" for p in Priority if p in summary.backlog
    )
    ages = summary.backlog_age
    lines = [
        _("<b>Support summary for {day}</b>").format(day=day),
        "",
        _("Opened: {count}").format(count=summary.opened)
        + (f" ({kinds}; {priorities})" if kinds else ""),
        _("First responses: {count}").format(count=summary.first_responded),
        _("Resolved: {count}").format(count=summary.resolved),
        _("Closed: {count}").format(count=closed_total) + (f" ({closed})" if closed else ""),
        _("Reopened: {count}").format(count=summary.reopened),
        _("Backlog at the end of the day: {count}").format(count=backlog_total)
        + (f" ({backlog})" if backlog else ""),
        _("  by age: under a day {young}, 1–3 days {middle}, over 3 days {old}").format(
            young=ages.get("<1d", 0), middle=ages.get("1-3d", 0), old=ages.get(">3d", 0)
        ),
        "",
        _("First response (support hours): median {median}, 90% within {p90}").format(
            median=_time(summary.first_response_median, locale),
            p90=_time(summary.first_response_p90, locale),
        ),
        _("Resolution (support hours): median {median}, 90% within {p90}").format(
            median=_time(summary.resolution_median, locale),
            p90=_time(summary.resolution_p90, locale),
        ),
        _("SLA breaches: {count}").format(count=summary.sla_breaches),
    ]
    if summary.ratings:
        lines.append(
            _("Rating: {average} on average from {count}; low (1–2): {low}").format(
                average=format_decimal(summary.rating_average or 0, "0.0", locale=locale),
                count=summary.ratings,
                low=summary.low_ratings,
            )
        )
    else:
        lines.append(_("Rating: no ratings that day"))
    if summary.assignees:
        lines += ["", _("<b>By assignee</b> (resolved that day / open now):")]
        lines += [f"• {html.quote(a.name)}: {a.resolved} / {a.open}" for a in summary.assignees]
    return "\n".join(lines)


def chart_labels() -> tuple[str, str, str]:
    return _("opened"), _("closed"), _("backlog")


def chart_title(last: date, locale: str) -> str:
    return _("Last 14 days to {day}").format(day=format_date(last, "d MMM", locale=locale))


def export_header() -> list[str]:
    return [
        _("Number"),
        _("Opened"),
        _("First response"),
        _("Resolved"),
        _("Closed"),
        _("Kind"),
        _("Priority"),
        _("Status"),
        _("Close reason"),
        _("Assignee"),
        _("Line"),
        _("First response, min (support hours)"),
        _("Resolution, min (support hours)"),
        _("Rating"),
        _("Topic"),
    ]
