"""Per-customer limits (SPEC §4): the pace window, the settings, and whose turn it is in the
staff-side queue."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config import SettingsError, load_settings
from bot.db.models import Delivery
from bot.delivery.sender import Turns, fairness_key
from bot.services.pace import CustomerPace

STAFF = -1001234567890


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the pace window


def test_over_the_limit_is_told_once_per_burst() -> None:
    clock = FakeClock()
    pace = CustomerPace(3, clock=clock)
    verdicts = [pace.hit(1) for _ in range(6)]
    assert [v.over for v in verdicts] == [False, False, False, True, True, True]
    assert [v.warn for v in verdicts] == [False, False, False, True, False, False]
    # Another customer has a window of their own.
    assert not pace.hit(2).over
    # A minute later the burst is over; the next burst is told again.
    clock.now += 61
    assert [pace.hit(1).warn for _ in range(5)] == [False, False, False, True, False]


def test_a_steady_pace_under_the_limit_is_never_over() -> None:
    clock = FakeClock()
    pace = CustomerPace(20, clock=clock)
    for _ in range(200):
        assert not pace.hit(1).over
        clock.now += 3.1  # 19 a minute


def test_the_parts_of_an_album_count_as_one_message() -> None:
    clock = FakeClock()
    pace = CustomerPace(2, clock=clock)
    assert not pace.hit(1).over
    for _ in range(10):
        assert not pace.hit(1, album="g1").over
    verdict = pace.hit(1, album="g2")
    assert verdict.over and verdict.warn
    assert pace.hit(1, album="g2").over  # its further parts: the same verdict, no new notice
    assert not pace.hit(1, album="g2").warn


def test_a_message_handled_again_keeps_its_verdict() -> None:
    clock = FakeClock()
    pace = CustomerPace(2, recent=3, clock=clock)
    first = [pace.hit(1, message_id=n) for n in (10, 11, 12)]
    assert [(v.over, v.warn) for v in first] == [(False, False), (False, False), (True, True)]
    # Handled again (a retry): the same verdicts, the warning included, nothing counted.
    assert [pace.hit(1, message_id=n) for n in (10, 11, 12)] == first
    clock.now += 61
    assert pace.hit(1, message_id=12).over  # still its own verdict, though the window moved
    # Only the last ``recent`` verdicts are kept: 13 pushes 10 out, which then counts anew.
    assert not pace.hit(1, message_id=13).over
    assert not pace.hit(1, message_id=10).over
    assert pace.hit(1, message_id=14).over  # 13, 10 and now 14 within the window


def test_the_map_is_bounded() -> None:
    clock = FakeClock()
    pace = CustomerPace(5, max_customers=100, clock=clock)
    for customer in range(1000):
        pace.hit(customer)
    assert len(pace) == 100
    # Quiet for a whole window: forgotten, whatever the cap.
    clock.now += 61
    pace.hit(5000)
    assert len(pace) == 1


# ---------------------------------------------------------------- settings


def test_limits_have_the_spec_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_OPEN_TICKETS", raising=False)
    monkeypatch.delenv("CUSTOMER_MESSAGES_PER_MINUTE", raising=False)
    s = load_settings(_env_file=None, bot_token="123456:ABC-def", staff_chat_id=STAFF)
    assert s.max_open_tickets == 5
    assert s.customer_messages_per_minute == 20


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_OPEN_TICKETS", "0"),
        ("MAX_OPEN_TICKETS", "many"),
        ("CUSTOMER_MESSAGES_PER_MINUTE", "0"),
        ("CUSTOMER_MESSAGES_PER_MINUTE", "-5"),
    ],
)
def test_bad_limits_are_one_line_naming_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, bot_token="123456:ABC-def", staff_chat_id=STAFF)
    assert variable in str(error.value)
    assert "\n" not in str(error.value)


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_OPEN_TICKETS", "2")
    monkeypatch.setenv("CUSTOMER_MESSAGES_PER_MINUTE", "7")
    s = load_settings(_env_file=None, bot_token="123456:ABC-def", staff_chat_id=STAFF)
    assert (s.max_open_tickets, s.customer_messages_per_minute) == (2, 7)


# ---------------------------------------------------------------- whose turn


def _delivery(delivery_id: int, customer: int, ticket: int, rank: int = 2) -> Delivery:
    return Delivery(
        id=delivery_id,
        created_at=datetime.now(UTC),
        chat_id=STAFF,
        stream=f"{STAFF}:{ticket}",
        rank=rank,
        method="CopyMessage",
        payload={},
        status="pending",
        attempts=0,
        not_before=datetime.now(UTC),
        purpose="relay",
        ticket_number=ticket,
        context={"customer_chat_id": customer},
    )


def test_customers_take_turns_within_a_rank() -> None:
    turns = Turns()
    # Customer 1 has five tickets whose heads are older than anyone else's.
    heads = [_delivery(i, customer=1, ticket=i) for i in range(1, 6)]
    heads += [_delivery(10, customer=2, ticket=10), _delivery(11, customer=3, ticket=11)]
    order = [d.id for d in turns.order(heads)]
    assert order[:3] == [1, 10, 11]  # one head of each customer per round
    # Customer 1 was served: now the others go first even with younger messages.
    turns.served(heads[0])
    order = [d.id for d in turns.order(heads[1:])]
    assert order[:2] == [10, 11]


def test_rank_still_comes_first() -> None:
    turns = Turns()
    urgent = _delivery(50, customer=1, ticket=1, rank=1)
    turns.served(urgent)
    order = turns.order([_delivery(2, customer=2, ticket=2, rank=3), urgent])
    assert [d.id for d in order] == [50, 2]


def test_turns_are_bounded() -> None:
    turns = Turns(cap=10)
    for customer in range(100):
        turns.served(_delivery(customer + 1, customer=customer, ticket=customer))
    assert len(turns._served) == 10


def test_fairness_keys() -> None:
    staff_relay = _delivery(1, customer=7, ticket=3)
    assert fairness_key(staff_relay) == "customer:7"
    edit = _delivery(2, customer=7, ticket=3)
    edit.context = {"edit_card": True}
    assert fairness_key(edit) == "ticket:3"
    private = _delivery(3, customer=7, ticket=3)
    private.chat_id, private.stream = 7, "7"
    assert fairness_key(private) == "7"
