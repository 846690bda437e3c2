"""What the problems use case (SPEC §13) tells customers and staff, as data; rendered at the
edge (bot/views/problems.py)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.problems import LinkRefused


@dataclass(frozen=True, slots=True)
class KnownProblem:
    """To a customer, once per ticket: their request is about a known problem."""

    number: int


@dataclass(frozen=True, slots=True)
class LinkReport:
    """To staff: what a /link (or a press) did, ticket by ticket."""

    problem: int
    linked: tuple[int, ...] = ()
    moved: tuple[tuple[int, int], ...] = ()  # (incident, the problem it was linked to before)
    refused: tuple[tuple[int, LinkRefused], ...] = ()
    missing: tuple[int, ...] = ()  # no such ticket
    problem_of: int | None = None  # for PROBLEM_IS_INCIDENT: the problem to link to instead

    @property
    def changed(self) -> tuple[int, ...]:
        return (*self.linked, *(incident for incident, _ in self.moved))


@dataclass(frozen=True, slots=True)
class Unlinked:
    """To staff: incidents unlinked from their problems (``missing``: no such ticket or not
    linked)."""

    unlinked: tuple[tuple[int, int], ...]  # (incident, its problem)
    not_linked: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentDisputed:
    """To staff, in the problem's topic: a linked customer disputed the shared answer, so
    their request left the problem and is worked on its own."""

    problem: int
    incident: int
    reason: str


@dataclass(frozen=True, slots=True)
class BroadcastOffer:
    """To staff, under an answer in a problem's topic: send it to every linked customer."""

    problem: int
    message_id: int  # the staff answer
    customers: int  # how many linked incidents are open


@dataclass(frozen=True, slots=True)
class Broadcast:
    """To staff: the answer went to that many linked customers."""

    problem: int
    customers: int


@dataclass(frozen=True, slots=True)
class ResolveAllOffer:
    """To staff, after the problem is resolved: resolve its open incidents with its answer."""

    problem: int
    incidents: int


@dataclass(frozen=True, slots=True)
class ResolvedAll:
    """To staff: that many incidents were resolved with the problem's answer."""

    problem: int
    incidents: int
