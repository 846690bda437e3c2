"""The managers' figures drawn for a manager: the summary as text (numbers and durations in
their language), its chart as a PNG, and the export as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from babel.dates import format_date
from babel.numbers import format_decimal

from bot.domain.tickets import CloseReason, Kind, Priority
from bot.services.notices_desk import DailySummary
from bot.services.rendering import Rendered
from bot.services.reports import (
    DayPoint,
    DayReport,
    ExportRow,
    ProblemFigures,
    Summary,
    TariffFigures,
    csv_cell,
)
from bot.views.formatting import duration
from bot.views.labels import close_reason_label, kind_label, priority_label
from bot.views.render import RenderFn


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
    if summary.problems.any:
        lines += ["", *_problem_lines(summary.problems, locale)]
    if summary.by_tariff:
        lines += ["", *_tariff_lines(summary.by_tariff, locale)]
    return "\n".join(lines)


def _tariff_lines(figures: Sequence[TariffFigures], locale: str) -> list[str]:
    """The day by tariff (SPEC §12), durations in each tariff's support hours."""
    lines = [_("<b>By tariff</b>")]
    for line in figures:
        lines.append(
            _(
                "• {tariff}: opened {opened}, first responses {answered} (median {median}), "
                "SLA breaches {breaches}, resolved {resolved} ({late} after the resolution "
                "target), backlog {backlog}"
            ).format(
                tariff=html.quote(line.tariff.name(locale)),
                opened=line.opened,
                answered=line.first_responded,
                median=_time(line.first_response_median, locale),
                breaches=line.sla_breaches,
                resolved=line.resolved,
                late=line.resolution_late,
                backlog=line.backlog,
            )
        )
    return lines


def _problem_lines(problems: ProblemFigures, locale: str) -> list[str]:
    """The summary's block of problems and their incidents (SPEC §13); a line whose count is
    zero is left out."""
    lines = [_("<b>Problems</b>")]
    if problems.linked:
        lines.append(
            ngettext(
                "Linked that day: {count} request, problems: {problems}",
                "Linked that day: {count} requests, problems: {problems}",
                problems.linked,
            ).format(count=problems.linked, problems=problems.linked_to)
        )
    if problems.resolved:
        lines.append(
            ngettext(
                "Resolved: {count} problem, linked requests: {requests}",
                "Resolved: {count} problems, linked requests: {requests}",
                problems.resolved,
            ).format(count=problems.resolved, requests=problems.resolved_incidents)
        )
        lines.append(
            _("Problem resolution (support hours): median {median}, 90% within {p90}").format(
                median=_time(problems.resolution_median, locale),
                p90=_time(problems.resolution_p90, locale),
            )
        )
    if problems.open:
        lines.append(
            ngettext(
                "Open now: {count} problem; open requests linked to it: {requests}",
                "Open now: {count} problems; open requests linked to them: {requests}",
                problems.open,
            ).format(count=problems.open, requests=problems.open_incidents)
        )
    return lines


def chart_labels() -> tuple[str, str, str]:
    return _("opened"), _("closed"), _("backlog")


def chart_title(last: date, locale: str) -> str:
    return _("Last 14 days to {day}").format(day=format_date(last, "d MMM", locale=locale))


def export_header(*, tariffs: bool = False) -> list[str]:
    """``tariffs``: the desk sells tariffs (TARIFFS_FILE), a last column names each one's."""
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
        _("Problem"),
        _("Linked requests"),
        *([_("Tariff")] if tariffs else []),
    ]


def export_csv(
    rows: Sequence[ExportRow], *, header: Sequence[str], tz: ZoneInfo, tariffs: bool = False
) -> bytes:
    """The export's rows as CSV in UTF-8 with a BOM, so that Excel reads it right; times in
    the service's time zone; ``tariffs``: with the tariff's column (``export_header``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)

    def stamp(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""

    def blank(value: int | None) -> int | str:
        return "" if value is None else value

    for row in rows:
        writer.writerow(
            csv_cell(cell)
            for cell in [
                row.number,
                stamp(row.created_at),
                stamp(row.first_response_at),
                stamp(row.resolved_at),
                stamp(row.closed_at),
                row.kind.value,
                row.priority.name,
                row.status.value,
                row.close_reason.value if row.close_reason else "",
                row.assignee,
                row.line,
                blank(row.first_response_minutes),
                blank(row.resolution_minutes),
                row.rating or "",
                row.topic,
                row.problem or "",
                row.linked_incidents,
                *([row.tariff] if tariffs else []),
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def chart_png(points: Sequence[DayPoint], *, title: str, labels: tuple[str, str, str]) -> bytes:
    """Opened and closed per day as bars, the backlog as a line; big enough for a phone."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=120)
    try:
        days = [p.day.strftime("%d.%m") for p in points]
        x = list(range(len(points)))
        axis.bar([i - 0.2 for i in x], [p.opened for p in points], 0.4, label=labels[0])
        axis.bar([i + 0.2 for i in x], [p.closed for p in points], 0.4, label=labels[1])
        axis.plot(x, [p.backlog for p in points], color="black", marker="o", label=labels[2])
        axis.set_xticks(x, days, rotation=45, fontsize=9)
        axis.set_title(title)
        axis.legend(loc="upper left")
        axis.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def summary_chart(report: DayReport, locale: str) -> bytes:
    """The summary's chart, titled and labelled in the current locale."""
    return chart_png(report.points, title=chart_title(report.day, locale), labels=chart_labels())


class SummaryCharts:
    """Draws the summary's chart in a manager's language outside any update (the daily
    summary): the ``ChartRenderer`` that ``ManagerService`` is given."""

    def __init__(self, i18n: I18n) -> None:
        self.i18n = i18n

    def __call__(self, report: DayReport, locale: str) -> bytes:
        with self.i18n.context(), self.i18n.use_locale(locale):
            return summary_chart(report, locale)


def notice_views() -> Mapping[type, RenderFn]:
    """The managers' notices, for ``ViewRenderer``."""
    return {
        DailySummary: lambda notice, locale: Rendered(summary_text(notice.report.summary, locale))
    }
