"""Problems and their incidents (SPEC §13): the rules of linking, pure.

When the service stops, many customers each open an incident about the same cause. Staff link
those incidents to one *problem* ticket, answer them from it and resolve them together. The
links are one level deep: a problem is not an incident of another problem, and an incident
has no incidents of its own — so a link can never make a cycle, and every incident names the
one problem it belongs to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.tickets import Status

# What one /link may name: a burst of a few hundred customers, not a sweep of the archive.
MAX_LINKED_AT_ONCE = 200

_TOKEN = re.compile(r"#?(\d{1,18})(?:\s*[-–—]\s*#?(\d{1,18}))?")


class LinkRefused(StrEnum):
    """Why a ticket cannot be linked to a problem (nothing changes then)."""

    SELF = "self"  # a ticket is not its own incident
    INCIDENT_CLOSED = "incident_closed"  # a closed ticket cannot be linked
    PROBLEM_CLOSED = "problem_closed"  # nothing is linked to a closed problem
    PROBLEM_IS_INCIDENT = "problem_is_incident"  # the problem is itself linked to a problem
    HAS_INCIDENTS = "has_incidents"  # the ticket is a problem with incidents of its own
    ALREADY = "already"  # linked to that problem already


@dataclass(frozen=True, slots=True)
class Linkable:
    """What the rules need to know of a ticket."""

    number: int
    status: Status
    problem: int | None  # the problem it is linked to
    incidents: int  # how many tickets are linked to it


def refusal(incident: Linkable, problem: Linkable) -> LinkRefused | None:
    """Why ``incident`` cannot be linked to ``problem``, or None: it can. A ticket linked to
    another problem can: it moves (a ticket links to at most one problem)."""
    if incident.number == problem.number:
        return LinkRefused.SELF
    if incident.status is Status.CLOSED:
        return LinkRefused.INCIDENT_CLOSED
    if problem.status is Status.CLOSED:
        return LinkRefused.PROBLEM_CLOSED
    if problem.problem is not None:
        return LinkRefused.PROBLEM_IS_INCIDENT
    if incident.incidents:
        return LinkRefused.HAS_INCIDENTS
    if incident.problem == problem.number:
        return LinkRefused.ALREADY
    return None


class NumbersError(ValueError):
    """A list of ticket numbers that cannot be read; ``token`` is the part at fault."""

    def __init__(self, token: str, *, too_many: bool = False) -> None:
        super().__init__(token)
        self.token = token
        self.too_many = too_many


def parse_numbers(text: str, *, limit: int = MAX_LINKED_AT_ONCE) -> list[int]:
    """``"12 34, #35-40"`` → ``[12, 34, 35, 36, 37, 38, 39, 40]``: numbers and ranges in the
    order written, each once. Raises :class:`NumbersError` naming what is not a number or a
    range, or when more than ``limit`` tickets are named."""
    numbers: dict[int, None] = {}
    for token in _tokens(text):
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise NumbersError(token)
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if first < 1 or last < first:
            raise NumbersError(token)
        if last - first + 1 > limit:
            raise NumbersError(token, too_many=True)
        for number in range(first, last + 1):
            numbers[number] = None
            if len(numbers) > limit:
                raise NumbersError(token, too_many=True)
    return list(numbers)


def _tokens(text: str) -> list[str]:
    """Words split at spaces and commas, a range written with spaces around its dash kept
    together (``35 - 40``)."""
    spaced = re.sub(r"\s*([-–—])\s*", r"\1", text.strip())
    return [token for token in re.split(r"[\s,;]+", spaced) if token]
