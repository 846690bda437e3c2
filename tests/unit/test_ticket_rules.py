"""Ticket lifecycle rules (SPEC §3): the status table, close reasons, priorities."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.tickets import (
    Action,
    CloseReason,
    Kind,
    Priority,
    Status,
    TransitionRefused,
    allowed_actions,
    can_reassign,
    default_priority,
    is_open,
    transition,
)

# SPEC §3 "Statuses", written out independently of the code's own table.
S, A = Status, Action
EXPECTED: dict[tuple[Status, Action], Status] = {
    # new: staff takes/assigns -> in_progress; staff or customer closes -> closed
    (S.NEW, A.TAKE): S.IN_PROGRESS,
    (S.NEW, A.CLOSE_BY_STAFF): S.CLOSED,
    (S.NEW, A.CLOSE_BY_CUSTOMER): S.CLOSED,
    # in_progress: ask info -> waiting_customer; resolve -> resolved; staff/customer closes
    (S.IN_PROGRESS, A.ASK_INFO): S.WAITING_CUSTOMER,
    (S.IN_PROGRESS, A.RESOLVE): S.RESOLVED,
    (S.IN_PROGRESS, A.CLOSE_BY_STAFF): S.CLOSED,
    (S.IN_PROGRESS, A.CLOSE_BY_CUSTOMER): S.CLOSED,
    # Not in SPEC's table, an undo: a staff album taken for an answer whose "!" caption came
    # on a later part gives back the take it caused, before the customer was told.
    (S.IN_PROGRESS, A.TAKE_BACK): S.NEW,
    # waiting_customer: customer answers -> in_progress; resolve; staff/customer closes
    (S.WAITING_CUSTOMER, A.CUSTOMER_ANSWERED): S.IN_PROGRESS,
    (S.WAITING_CUSTOMER, A.RESOLVE): S.RESOLVED,
    (S.WAITING_CUSTOMER, A.CLOSE_BY_STAFF): S.CLOSED,
    (S.WAITING_CUSTOMER, A.CLOSE_BY_CUSTOMER): S.CLOSED,
    # resolved: confirm -> closed; dispute -> in_progress (reopened); no answer -> closed (auto)
    (S.RESOLVED, A.CONFIRM): S.CLOSED,
    (S.RESOLVED, A.DISPUTE): S.IN_PROGRESS,
    (S.RESOLVED, A.AUTO_CLOSE): S.CLOSED,
    # closed: final
}

EXPECTED_REASON = {
    A.CONFIRM: CloseReason.CONFIRMED,
    A.AUTO_CLOSE: CloseReason.AUTO,
    A.CLOSE_BY_CUSTOMER: CloseReason.BY_CUSTOMER,
    A.CLOSE_BY_STAFF: CloseReason.BY_STAFF,
}

ALL_PAIRS = list(itertools.product(Status, Action))
LEGAL = [pair for pair in ALL_PAIRS if pair in EXPECTED]
REFUSED = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def _id(pair: tuple[Status, Action]) -> str:
    return f"{pair[0].value}-{pair[1].value}"


def test_the_matrix_covers_every_pair() -> None:
    assert len(ALL_PAIRS) == len(Status) * len(Action) == 50
    assert len(LEGAL) == 15
    assert len(REFUSED) == 35


@pytest.mark.parametrize("pair", LEGAL, ids=_id)
def test_legal_transition_gives_the_status_of_the_table(pair: tuple[Status, Action]) -> None:
    status, action = pair
    outcome = transition(status, action)
    assert outcome.status is EXPECTED[pair]


@pytest.mark.parametrize("pair", REFUSED, ids=_id)
def test_every_other_transition_is_refused_and_names_action_and_status(
    pair: tuple[Status, Action],
) -> None:
    status, action = pair
    with pytest.raises(TransitionRefused) as caught:
        transition(status, action)
    assert caught.value.status is status
    assert caught.value.action is action
    message = str(caught.value)
    assert action.value in message
    assert status.value in message


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_allowed_actions_agree_with_the_table(status: Status) -> None:
    assert allowed_actions(status) == {a for (s, a) in EXPECTED if s is status}


@pytest.mark.parametrize("pair", LEGAL, ids=_id)
def test_close_reason_only_and_always_on_close(pair: tuple[Status, Action]) -> None:
    outcome = transition(*pair)
    if outcome.status is Status.CLOSED:
        assert outcome.close_reason is EXPECTED_REASON[pair[1]]
    else:
        assert outcome.close_reason is None


@pytest.mark.parametrize(
    ("status", "action", "reason"),
    [
        (S.RESOLVED, A.CONFIRM, CloseReason.CONFIRMED),
        (S.RESOLVED, A.AUTO_CLOSE, CloseReason.AUTO),
        (S.NEW, A.CLOSE_BY_CUSTOMER, CloseReason.BY_CUSTOMER),
        (S.IN_PROGRESS, A.CLOSE_BY_CUSTOMER, CloseReason.BY_CUSTOMER),
        (S.WAITING_CUSTOMER, A.CLOSE_BY_CUSTOMER, CloseReason.BY_CUSTOMER),
        (S.NEW, A.CLOSE_BY_STAFF, CloseReason.BY_STAFF),
        (S.IN_PROGRESS, A.CLOSE_BY_STAFF, CloseReason.BY_STAFF),
        (S.WAITING_CUSTOMER, A.CLOSE_BY_STAFF, CloseReason.BY_STAFF),
    ],
)
def test_close_reason_per_action(status: Status, action: Action, reason: CloseReason) -> None:
    outcome = transition(status, action)
    assert outcome.status is Status.CLOSED
    assert outcome.close_reason is reason


@pytest.mark.parametrize("pair", LEGAL, ids=_id)
def test_reopened_only_on_dispute(pair: tuple[Status, Action]) -> None:
    assert transition(*pair).reopened is (pair == (S.RESOLVED, A.DISPUTE))


def test_dispute_reopens_into_in_progress() -> None:
    outcome = transition(Status.RESOLVED, Action.DISPUTE)
    assert outcome.status is Status.IN_PROGRESS
    assert outcome.reopened is True
    assert outcome.close_reason is None


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_closed_is_final(action: Action) -> None:
    with pytest.raises(TransitionRefused):
        transition(Status.CLOSED, action)
    assert allowed_actions(Status.CLOSED) == frozenset()


def test_a_refusal_changes_nothing_it_is_pure() -> None:
    # The same call twice gives the same answer: nothing is kept between calls.
    for status, action in REFUSED:
        for _ in range(2):
            with pytest.raises(TransitionRefused):
                transition(status, action)
    for pair in LEGAL:
        assert transition(*pair) == transition(*pair)


@pytest.mark.parametrize(
    ("kind", "priority"),
    [
        (Kind.PROBLEM, Priority.P1),
        (Kind.INCIDENT, Priority.P2),
        (Kind.SERVICE, Priority.P3),
        (Kind.DEVELOPMENT, Priority.P4),
    ],
)
def test_default_priority_by_kind(kind: Kind, priority: Priority) -> None:
    assert default_priority(kind) is priority


def test_every_kind_has_a_default_priority_and_p1_is_the_most_urgent() -> None:
    assert {default_priority(k) for k in Kind} == set(Priority)
    assert sorted(Priority) == [Priority.P1, Priority.P2, Priority.P3, Priority.P4]
    assert int(Priority.P1) == 1
    assert int(Priority.P4) == 4


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_can_reassign_in_every_status_but_closed(status: Status) -> None:
    assert can_reassign(status) is (status is not Status.CLOSED)


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_is_open(status: Status) -> None:
    assert is_open(status) is (status is not Status.CLOSED)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Status)), st.lists(st.sampled_from(list(Action)), max_size=40))
def test_random_action_sequences_keep_the_invariants(start: Status, actions: list[Action]) -> None:
    status = start
    closes = 0
    for action in actions:
        before = status
        if (before, action) not in EXPECTED:
            with pytest.raises(TransitionRefused) as refusal:
                transition(status, action)
            assert (refusal.value.status, refusal.value.action) == (before, action)
            continue
        outcome = transition(status, action)
        assert before is not Status.CLOSED, "closed is absorbing"
        assert outcome.status in set(Status)
        assert outcome.status is EXPECTED[(before, action)]
        if outcome.status is Status.CLOSED:
            closes += 1
            assert outcome.close_reason in set(CloseReason), "every close has a reason"
        else:
            assert outcome.close_reason is None
        assert outcome.reopened is (action is Action.DISPUTE)
        if outcome.reopened:
            assert before is Status.RESOLVED
        status = outcome.status
    assert closes <= 1
    assert isinstance(status, Status)
    if closes or start is Status.CLOSED:
        assert status is Status.CLOSED
