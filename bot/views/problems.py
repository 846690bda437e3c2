"""Texts of problems and their incidents (SPEC §13): what a linked customer is told, and what
staff are told of links, offers and answers sent to all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiogram import html
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.domain.problems import LinkRefused
from bot.keyboards import problems as kb
from bot.services.notices_problems import (
    Broadcast,
    BroadcastOffer,
    IncidentDisputed,
    KnownProblem,
    LinkReport,
    ResolveAllOffer,
    ResolvedAll,
    Unlinked,
)
from bot.services.rendering import Rendered
from bot.views.render import RenderFn


def _numbers(numbers: Sequence[int]) -> str:
    return ", ".join(f"#{n}" for n in numbers)


def known_problem(notice: KnownProblem, _locale: str) -> Rendered:
    return Rendered(
        _(
            "ℹ️ Your request #{number} is about a problem we already know of and are working "
            "on. You will hear from us here as soon as there is news; you don't need to write "
            "again."
        ).format(number=notice.number)
    )


def refused_reason(reason: LinkRefused, problem: int, problem_of: int | None) -> str:
    reasons = {
        LinkRefused.SELF: lambda: _("a request is not its own incident"),
        LinkRefused.INCIDENT_CLOSED: lambda: _("it is closed"),
        LinkRefused.PROBLEM_CLOSED: lambda: _("#{problem} is closed").format(problem=problem),
        LinkRefused.PROBLEM_IS_INCIDENT: lambda: _(
            "#{problem} is itself linked to #{other}: link to #{other}"
        ).format(problem=problem, other=problem_of),
        LinkRefused.HAS_INCIDENTS: lambda: _(
            "it is a problem with requests of its own: unlink them first"
        ),
        LinkRefused.ALREADY: lambda: _("linked to #{problem} already").format(problem=problem),
    }
    return reasons[reason]()


def link_report(notice: LinkReport, _locale: str) -> Rendered:
    lines: list[str] = []
    if notice.linked:
        lines.append(
            ngettext(
                "🔗 Linked to problem #{problem}: {numbers} ({count} request).",
                "🔗 Linked to problem #{problem}: {numbers} ({count} requests).",
                len(notice.linked),
            ).format(
                problem=notice.problem,
                numbers=_numbers(sorted(notice.linked)),
                count=len(notice.linked),
            )
        )
    for incident, before in notice.moved:
        lines.append(
            _("🔗 #{number} moved from problem #{old} to #{problem}.").format(
                number=incident, old=before, problem=notice.problem
            )
        )
    for incident, reason in notice.refused:
        lines.append(
            _("✖️ #{number} not linked: {reason}.").format(
                number=incident,
                reason=refused_reason(reason, notice.problem, notice.problem_of),
            )
        )
    if notice.missing:
        lines.append(_("✖️ No such request: {numbers}.").format(numbers=_numbers(notice.missing)))
    if notice.changed:
        lines.append(
            _(
                "Their customers are told it is a known problem. An answer in #{problem}'s topic "
                "(or a reply to its card) can go to all of them; resolving #{problem} offers to "
                "resolve them too."
            ).format(problem=notice.problem)
        )
    return Rendered("\n".join(lines) or _("Nothing to link."))


def unlinked(notice: Unlinked, _locale: str) -> Rendered:
    lines = [
        _("✂️ #{number} is no longer linked to problem #{problem}.").format(
            number=number, problem=problem
        )
        for number, problem in notice.unlinked
    ]
    if notice.not_linked:
        lines.append(
            _("{numbers}: not linked to any problem.").format(numbers=_numbers(notice.not_linked))
        )
    return Rendered("\n".join(lines))


def incident_disputed(notice: IncidentDisputed, _locale: str) -> Rendered:
    return Rendered(
        _(
            "🔄 The customer of #{incident} says the answer did not solve it: {reason}\n"
            "#{incident} is no longer linked to this problem and is worked on its own."
        ).format(incident=notice.incident, reason=html.quote(notice.reason))
    )


def broadcast_offer(notice: BroadcastOffer, _locale: str) -> Rendered:
    text = ngettext(
        "#{problem} has {count} linked request still open. Send them this answer too?",
        "#{problem} has {count} linked requests still open. Send all of them this answer too?",
        notice.customers,
    ).format(problem=notice.problem, count=notice.customers)
    markup = kb.tell_all(notice.problem, notice.message_id, notice.customers)
    return Rendered(text, markup.model_dump(mode="json", exclude_none=True))


def broadcast(notice: Broadcast, _locale: str) -> Rendered:
    return Rendered(
        ngettext(
            "📣 Sent to {count} linked customer of #{problem}, each on their own request.",
            "📣 Sent to {count} linked customers of #{problem}, each on their own request.",
            notice.customers,
        ).format(count=notice.customers, problem=notice.problem)
    )


def resolve_all_offer(notice: ResolveAllOffer, _locale: str) -> Rendered:
    text = ngettext(
        "#{problem} is resolved; {count} linked request is still open. Resolve it with the "
        "same answer? Its customer confirms or disputes it on their own.",
        "#{problem} is resolved; {count} linked requests are still open. Resolve them with "
        "the same answer? Each customer confirms or disputes their own.",
        notice.incidents,
    ).format(problem=notice.problem, count=notice.incidents)
    markup = kb.resolve_all(notice.problem, notice.incidents)
    return Rendered(text, markup.model_dump(mode="json", exclude_none=True))


def resolved_all(notice: ResolvedAll, _locale: str) -> Rendered:
    return Rendered(
        ngettext(
            "✅ {count} linked request of #{problem} resolved: its customer is asked to confirm.",
            "✅ {count} linked requests of #{problem} resolved: each customer is asked to confirm.",
            notice.incidents,
        ).format(count=notice.incidents, problem=notice.problem)
    )


def notice_views() -> Mapping[type, RenderFn]:
    return {
        KnownProblem: known_problem,
        LinkReport: link_report,
        Unlinked: unlinked,
        IncidentDisputed: incident_disputed,
        BroadcastOffer: broadcast_offer,
        Broadcast: broadcast,
        ResolveAllOffer: resolve_all_offer,
        ResolvedAll: resolved_all,
    }
