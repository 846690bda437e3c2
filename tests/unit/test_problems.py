"""Problems and their incidents (SPEC §13, issue 16): the linking rules alone, then the
service on both databases — linking, relinking and refusals, one answer to all linked
customers, resolving together, and a dispute taking an incident out of its problem."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiogram.utils.i18n import I18n
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database, migrate
from bot.db.models import Delivery, Ticket, TicketEvent, User
from bot.delivery.outbox import Outbox
from bot.domain.hours import SupportHours
from bot.domain.problems import (
    Linkable,
    LinkRefused,
    NumbersError,
    parse_numbers,
    refusal,
)
from bot.domain.tickets import Kind, Priority, Status
from bot.services.assignment import Assignment
from bot.services.cards import Cards
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.outgoing import TicketTags
from bot.services.problems import ProblemService
from bot.services.resolution import ResolutionService
from bot.views import problems as problem_views
from bot.views import resolution as resolution_views
from bot.views import staff as staff_views
from bot.views import tickets as ticket_views
from bot.views.desk import desk_views
from bot.views.render import ViewRenderer

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=MSK)
STAFF_CHAT = -100500
ANNA = 7
CUSTOMERS = range(101, 111)  # customer 101 opens ticket 1, 102 ticket 2, ...


# -- the rules --------------------------------------------------------------------------------


def _node(
    number: int, status: Status = Status.NEW, problem: int | None = None, incidents: int = 0
) -> Linkable:
    return Linkable(number, status, problem, incidents)


@pytest.mark.parametrize(
    ("incident", "problem", "expected"),
    [
        (_node(2), _node(1), None),
        (_node(2, problem=3), _node(1), None),  # linked elsewhere: it moves
        (_node(1), _node(1), LinkRefused.SELF),
        (_node(2, Status.CLOSED), _node(1), LinkRefused.INCIDENT_CLOSED),
        (_node(2), _node(1, Status.CLOSED), LinkRefused.PROBLEM_CLOSED),
        (_node(2), _node(1, problem=5), LinkRefused.PROBLEM_IS_INCIDENT),
        (_node(2, incidents=3), _node(1), LinkRefused.HAS_INCIDENTS),
        (_node(2, problem=1), _node(1), LinkRefused.ALREADY),
        (_node(2, Status.RESOLVED), _node(1, Status.RESOLVED), None),
    ],
)
def test_link_rules(incident: Linkable, problem: Linkable, expected: LinkRefused | None) -> None:
    assert refusal(incident, problem) is expected


@given(
    st.lists(
        st.tuples(st.integers(1, 8), st.integers(1, 8)),
        max_size=40,
    )
)
def test_links_that_the_rules_allow_never_make_a_chain_or_a_cycle(
    attempts: list[tuple[int, int]],
) -> None:
    """Whatever staff try, in whatever order: every incident's problem is a ticket that is
    not itself an incident — so following links ends after one step, never in a circle."""
    problem_of: dict[int, int] = {}
    for incident, problem in attempts:
        counts = {n: sum(1 for p in problem_of.values() if p == n) for n in range(1, 9)}

        def node(n: int, counts: dict[int, int] = counts) -> Linkable:
            return _node(n, problem=problem_of.get(n), incidents=counts[n])

        if refusal(node(incident), node(problem)) is None:
            problem_of[incident] = problem
    for incident, problem in problem_of.items():
        assert problem != incident
        assert problem not in problem_of  # a problem is never an incident itself


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("12 34", [12, 34]),
        ("#12, #34 35-37", [12, 34, 35, 36, 37]),
        ("35 - 37 36 12", [35, 36, 37, 12]),
        ("7–9", [7, 8, 9]),
        ("", []),
    ],
)
def test_numbers_and_ranges(text: str, numbers: list[int]) -> None:
    assert parse_numbers(text) == numbers


@pytest.mark.parametrize("text", ["12 abc", "40-35", "0", "12 -", "1-2-3"])
def test_what_is_not_a_number_is_named(text: str) -> None:
    with pytest.raises(NumbersError) as error:
        parse_numbers(text)
    assert not error.value.too_many
    assert error.value.token


def test_a_huge_range_is_refused_before_it_is_spelled_out() -> None:
    with pytest.raises(NumbersError) as error:
        parse_numbers("1-999999999999")
    assert error.value.too_many
    with pytest.raises(NumbersError):
        parse_numbers(" ".join(str(n) for n in range(1, 300)))


# -- the service ------------------------------------------------------------------------------


@dataclass
class FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def i18n() -> I18n:
    return I18n(path=ROOT / "locales", default_locale="en", domain="messages")


@pytest.fixture
async def session(backend_url: str) -> AsyncIterator[AsyncSession]:
    await asyncio.to_thread(migrate, backend_url)  # an SQLite file, then PostgreSQL
    database = Database(backend_url)
    async with database.writer() as s, s.begin():
        s.add(User(id=ANNA, first_name="Anna", created_at=NOW, updated_at=NOW))
        for customer in CUSTOMERS:
            s.add(User(id=customer, first_name=f"C{customer}", created_at=NOW, updated_at=NOW))
        for number, customer in enumerate(CUSTOMERS, start=1):
            s.add(
                Ticket(
                    number=number,
                    intake_key=f"k{number}",
                    customer_id=customer,
                    account_number="1234",
                    topic="Payments fail",
                    kind=Kind.INCIDENT,
                    description="The payment page fails.",
                    priority=Priority.P2,
                    status=Status.NEW,
                    line=1,
                    locale="en",
                    created_at=NOW - timedelta(hours=1),
                    updated_at=NOW - timedelta(hours=1),
                    reopened_count=0,
                )
            )
        await s.flush()
        yield s
    await database.dispose()


@dataclass
class Desk:
    problems: ProblemService
    resolution: ResolutionService
    anna: User
    i18n: I18n


@pytest.fixture
async def desk(session: AsyncSession, i18n: I18n) -> AsyncIterator[Desk]:
    clock = FixedClock(NOW)
    outbox = Outbox(clock)
    config = DeskConfig(
        staff_chat_id=STAFF_CHAT,
        hours=SupportHours.parse("00:00-23:59", MSK),
        hours_text="",
        default_locale="en",
    )
    render = ViewRenderer(
        i18n,
        desk_views(),
        ticket_views.notice_views(),
        resolution_views.notice_views(),
        staff_views.notice_views(),
        problem_views.notice_views(),
    )
    cards = Cards(outbox=outbox, config=config, clock=clock, render=render)
    resolution = ResolutionService(
        clock=clock,
        outbox=outbox,
        config=config,
        cards=cards,
        render=render,
        assignment=Assignment(
            clock=clock, outbox=outbox, config=config, cards=cards, render=render
        ),
        reminder_after=timedelta(days=2),
        auto_close_after=timedelta(days=3),
    )
    problems = ProblemService(
        clock=clock, outbox=outbox, config=config, cards=cards, render=render, resolution=resolution
    )
    resolution.after_dispute = problems.disputed
    anna = await session.get(User, ANNA)
    assert anna is not None
    with i18n.context(), i18n.use_locale("en"):
        yield Desk(problems, resolution, anna, i18n)


async def _sent(session: AsyncSession, **where: object) -> list[Delivery]:
    await session.flush()
    query = select(Delivery).order_by(Delivery.id)
    for column, value in where.items():
        query = query.where(getattr(Delivery, column) == value)
    return list(await session.scalars(query))


async def _events(session: AsyncSession, number: int) -> list[TicketEvent]:
    await session.flush()
    query = select(TicketEvent).where(TicketEvent.ticket_number == number)
    return list(await session.scalars(query.order_by(TicketEvent.id)))


async def _ticket(session: AsyncSession, number: int) -> Ticket:
    ticket = await session.get(Ticket, number)
    assert ticket is not None
    return ticket


async def test_linking_tells_each_customer_once_and_records_both_sides(
    session: AsyncSession, desk: Desk
) -> None:
    report = await desk.problems.link(session, 1, [2, 3, 4, 99], desk.anna)
    assert report.linked == (2, 3, 4) and report.missing == (99,)
    for number in (2, 3, 4):
        assert (await _ticket(session, number)).problem_number == 1
        [event] = [e for e in await _events(session, number) if e.type == "problem"]
        assert (event.old, event.new, event.actor_id) == (None, "1", ANNA)
    [linked] = [e for e in await _events(session, 1) if e.type == "incidents_linked"]
    assert linked.details == {"numbers": [2, 3, 4]}
    told = [d.chat_id for d in await _sent(session, purpose="notice")]
    assert sorted(told) == [102, 103, 104]  # the problem's own customer is not told

    # Moved to another problem: recorded on all three tickets, nobody told a second time.
    moved = await desk.problems.link(session, 5, [3], desk.anna)
    assert moved.moved == ((3, 1),) and not moved.linked
    assert (await _ticket(session, 3)).problem_number == 5
    assert [e.new for e in await _events(session, 1) if e.type == "incident_unlinked"] == ["3"]
    told = [d.chat_id for d in await _sent(session, purpose="notice")]
    assert sorted(told) == [102, 103, 104]


async def test_what_the_rules_refuse_changes_nothing(session: AsyncSession, desk: Desk) -> None:
    await desk.problems.link(session, 1, [2], desk.anna)
    (await _ticket(session, 6)).status = Status.CLOSED
    report = await desk.problems.link(session, 2, [3], desk.anna)  # 2 is an incident of 1
    assert report.refused == ((3, LinkRefused.PROBLEM_IS_INCIDENT),) and report.problem_of == 1
    report = await desk.problems.link(session, 3, [1, 3, 6, 2], desk.anna)
    assert dict(report.refused) == {
        1: LinkRefused.HAS_INCIDENTS,
        3: LinkRefused.SELF,
        6: LinkRefused.INCIDENT_CLOSED,
    }
    assert report.moved == ((2, 1),)  # a plain incident may move
    report = await desk.problems.link(session, 6, [4], desk.anna)
    assert report.refused == ((4, LinkRefused.PROBLEM_CLOSED),)
    assert (await _ticket(session, 4)).problem_number is None
    with pytest.raises(Refusal):
        await desk.problems.link(session, 404, [4], desk.anna)


async def test_one_answer_reaches_every_open_linked_customer_once_and_never_the_group(
    session: AsyncSession, desk: Desk
) -> None:
    await desk.problems.link(session, 1, [2, 3, 4, 5], desk.anna)
    (await _ticket(session, 5)).status = Status.CLOSED
    before = len(await _sent(session, chat_id=STAFF_CHAT))
    sent = await desk.problems.broadcast(session, 1, desk.anna, 777)
    assert sent.customers == 3
    copies = await _sent(session, purpose="answer")
    assert sorted(d.chat_id for d in copies) == [102, 103, 104]
    assert all(d.payload["message_id"] == 777 for d in copies)
    # Only the problem's own copy is the staff message's copy: none of these claims it.
    assert all(not TicketTags.of(d).staff_message_ids for d in copies)
    assert len(await _sent(session, chat_id=STAFF_CHAT)) == before
    for number in (2, 3, 4):
        ticket = await _ticket(session, number)
        assert ticket.first_response_at == NOW
        [answer] = [e for e in await _events(session, number) if e.type == "staff_message"]
        assert answer.details == {"problem": 1, "message_id": 777}
    with pytest.raises(Refusal):  # the same answer twice
        await desk.problems.broadcast(session, 1, desk.anna, 777)
    assert len(await _sent(session, purpose="answer")) == 3


async def test_resolving_together_and_a_dispute_leaving_the_problem(
    session: AsyncSession, desk: Desk
) -> None:
    await desk.problems.link(session, 1, [2, 3, 4], desk.anna)
    with pytest.raises(Refusal):  # the problem is not resolved yet
        await desk.problems.resolve_all(session, 1, desk.anna)
    problem = await _ticket(session, 1)
    await desk.resolution.resolve(session, problem, desk.anna, 900)
    await desk.problems.offer_resolve_all(session, problem, 900, None, "en")
    [offer] = [
        d for d in await _sent(session, chat_id=STAFF_CHAT) if "Resolve all" in str(d.payload)
    ]
    assert "3" in offer.payload["text"]

    done = await desk.problems.resolve_all(session, 1, desk.anna)
    assert done.incidents == 3
    for number in (2, 3, 4):
        assert (await _ticket(session, number)).status is Status.RESOLVED
    confirms = await _sent(session, purpose="confirm")
    assert sorted(d.chat_id for d in confirms) == [101, 102, 103, 104]
    with pytest.raises(Refusal):  # nothing left to resolve
        await desk.problems.resolve_all(session, 1, desk.anna)

    customer = await session.get(User, 103)
    assert customer is not None
    await desk.resolution.dispute(session, customer, 3, "Still fails for me")
    disputed = await _ticket(session, 3)
    assert disputed.status is Status.IN_PROGRESS and disputed.problem_number is None
    [unlinked] = [e for e in await _events(session, 3) if e.type == "problem" and e.new is None]
    assert (unlinked.old, unlinked.actor_role) == ("1", "customer")
    assert (await _ticket(session, 2)).problem_number == 1


def test_the_link_menu_marks_the_problem_a_request_is_linked_to(i18n: I18n) -> None:
    from bot.keyboards.problems import link_menu

    with i18n.context(), i18n.use_locale("en"):
        markup = link_menu(34, [(12, "Reports down", 5), (20, "Login fails", 0)], 12)
    labels = [row[0].text for row in markup.inline_keyboard]
    assert labels[:2] == ["✅ #12 · Reports down · 🧩5", "#20 · Login fails"]
    assert labels[2] == "✂️ Unlink from #12"


async def test_a_burst_press_leaves_requests_linked_meanwhile_where_they_are(
    session: AsyncSession, desk: Desk
) -> None:
    await desk.problems.link(session, 5, [4], desk.anna)  # staff linked #4 to #5 by hand
    report = await desk.problems.link_burst(session, [2, 3, 4], desk.anna)
    assert report.problem == 2 and report.linked == (3,) and report.moved == ()
    assert (await _ticket(session, 4)).problem_number == 5
