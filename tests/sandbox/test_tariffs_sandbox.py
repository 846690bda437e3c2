"""Tariffs in the sandbox, as a new user tries them (issue 15): Alice's organisation is on
Premium (round the clock), Boris's on Standard (09:00–21:00). Both write at 23:00: the desk
knows their accounts, and the cards and /queue show Alice's deadline running at night while
Boris's waits for the morning."""

from __future__ import annotations

from tests.sandbox.conftest import Sandbox, call
from tests.sandbox.test_problems_sandbox import (
    ALICE,
    BORIS,
    PAUL,
    STAFF,
    card,
    open_request,
    plain,
    sandbox,  # noqa: F401 - the fixture
    say,
    topic_of,
    wait_message,
)


def test_at_23_00_premium_runs_at_night_and_standard_waits_for_the_morning(
    sandbox: Sandbox,  # noqa: F811 - the fixture
) -> None:
    assert call(sandbox, "/api/clock", {"step": "to 23:00"})[0] == 200
    # The people list names the customers' accounts, so a tester knows what to type.
    status, world = call(sandbox, "/api/world")
    assert status == 200, world
    accounts = {p["id"]: p.get("account") for p in world["people"]}
    assert accounts[ALICE] == "10000001" and accounts[BORIS] == "20000001"

    alice = open_request(
        sandbox,
        ALICE,
        "Payments fail at night",
        "Every card payment fails since 22:40.",
        account="10000001",
    )
    wait_message(sandbox, ALICE, "Romashka LLC", "Premium")  # the account step knew it
    boris = open_request(
        sandbox,
        BORIS,
        "Отчёты не открываются",
        "Страница отчётов выдаёт ошибку 502.",
        account="20000001",
    )
    wait_message(sandbox, BORIS, "Vasilek JSC", "Стандарт")

    premium = plain(card(sandbox, alice, topic_of(sandbox, alice), "Премиум"))
    standard = plain(card(sandbox, boris, topic_of(sandbox, boris), "Стандарт"))
    assert "24/7" in premium and "09:00" in standard, (premium, standard)

    sent = say(sandbox, PAUL, "/queue", chat=STAFF)
    queue = wait_message(sandbox, PAUL, f"#{alice}", f"#{boris}", chat=STAFF, after=sent)
    text = plain(queue)
    # Alice's request is boosted to P1 and due tonight: it comes first.
    assert text.index(f"#{alice}") < text.index(f"#{boris}"), text
