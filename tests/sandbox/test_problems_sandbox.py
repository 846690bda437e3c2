"""Problems and their incidents (SPEC §13) as a new user plays them in the sandbox, through the
HTTP API its page uses: two customers report the same failure, an agent links the second request
to the first from its card, one answer in the problem's topic reaches both, resolve-all asks both
to confirm, one confirms and one disputes, and each ticket's history tells that story."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.conftest import Sandbox, call
from tests.waiting import eventually_sync

STAFF = -1001000000001
ALICE = 1001  # writes in English
BORIS = 1002  # writes in Russian
PAUL = 2002  # an agent whose language is English (the cards are in the desk's Russian)
WAIT = 15.0

Message = dict[str, Any]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The sandbox as README starts it, except for the bot's sending pace: at Telegram's
    (a message a second to a chat, 20 a minute to the group) this story alone takes half a
    minute. What each person sees is the same; the pace itself is tests/e2e's concern."""
    monkeypatch.setenv("DELIVERY_PRIVATE_PER_SECOND", "50")
    monkeypatch.setenv("DELIVERY_GROUP_PER_MINUTE", "3000")
    running = Sandbox(tmp_path)
    yield running
    code = running.stop()
    assert code == 0, f"the sandbox exited with {code}:\n{running.log()}"


def plain(message: Message) -> str:
    """A message's text as the page shows it, without the markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", message["html"]))


def buttons(message: Message) -> list[str]:
    return [button["text"] for row in message.get("keyboard", []) for button in row]


def view(sandbox: Sandbox, person: int, chat: int | None = None, thread: int | None = None) -> Any:
    query = f"/api/view?person={person}"
    if chat is not None:
        query += f"&chat={chat}"
    if thread is not None:
        query += f"&thread={thread}"
    status, body = call(sandbox, query)
    assert status == 200, body
    return body


def wait_message(
    sandbox: Sandbox,
    person: int,
    *fragments: str,
    chat: int | None = None,
    thread: int | None = None,
    after: int = 0,
    button: str | None = None,
) -> Message:
    """The newest bot message after ``after`` in the person's chat (or the staff group's topic)
    that shows every fragment (and the ``button``, when given), once there is one."""

    def found() -> Message | None:
        for message in reversed(view(sandbox, person, chat, thread)["messages"]):
            if message["id"] <= after or not message["by_bot"]:
                continue
            text = plain(message)
            if all(f in text for f in fragments) and (
                button is None or any(button in label for label in buttons(message))
            ):
                return message
        return None

    def seen() -> str:
        shown = [plain(m)[:160] for m in view(sandbox, person, chat, thread)["messages"][-6:]]
        return f"{person} never saw {fragments} (button {button!r}); the last messages: {shown}"

    return eventually_sync(found, seen, WAIT, 0.05)


def say(
    sandbox: Sandbox,
    person: int,
    text: str,
    *,
    chat: int | None = None,
    thread: int | None = None,
    reply_to: int | None = None,
) -> int:
    body = {"person": person, "text": text, "chat": chat, "thread": thread, "reply_to": reply_to}
    status, sent = call(sandbox, "/api/send", body)
    assert status == 200, sent
    return int(sent["sent"][0])


def press(sandbox: Sandbox, person: int, message: Message, label: str, chat: int) -> Any:
    """Press the button whose text holds ``label``; what the bot answered (toast or alert)."""
    chosen = [b for row in message["keyboard"] for b in row if label in b["text"]]
    assert chosen, f"no button {label!r} in {buttons(message)}"
    status, pressed = call(
        sandbox,
        "/api/press",
        {"person": person, "chat": chat, "message_id": message["id"], "data": chosen[-1]["data"]},
    )
    assert status == 200, pressed
    status, answer = call(sandbox, f"/api/answer/{pressed['query_id']}")
    assert status == 200, answer
    return answer


def open_request(
    sandbox: Sandbox, who: int, topic: str, description: str, account: str = "12345678"
) -> int:
    """The customer's dialog, answered step by step as the bot asks; the ticket's number."""
    sent = say(sandbox, who, "/new")
    kinds = wait_message(sandbox, who, after=sent, button="🔥")
    press(sandbox, who, kinds, "🔥", who)
    wait_message(sandbox, who, after=kinds["id"])  # the topic, please
    for answer in (topic, description):
        sent = say(sandbox, who, answer)
        wait_message(sandbox, who, after=sent)  # the next question
    sent = say(sandbox, who, account)
    screenshots = wait_message(sandbox, who, after=sent, button="→")
    press(sandbox, who, screenshots, "→", who)  # Skip
    summary = wait_message(sandbox, who, topic, after=screenshots["id"], button="✅")
    press(sandbox, who, summary, "✅", who)  # Send
    registered = wait_message(sandbox, who, topic, after=summary["id"])
    number = re.search(r"#(\d+)", plain(registered))
    assert number is not None, plain(registered)
    return int(number.group(1))


def topic_of(sandbox: Sandbox, number: int) -> int:
    """The staff group's topic of the ticket, as the agent finds it in the chat list."""

    def found() -> int | None:
        for entry in view(sandbox, PAUL)["chats"]:
            if entry["kind"] == "topic" and f"#{number} · " in entry["title"]:
                return int(entry["thread"])
        return None

    return eventually_sync(found, f"no topic for #{number}", WAIT, 0.05)


def card(sandbox: Sandbox, number: int, thread: int, *fragments: str) -> Message:
    """The ticket's card in its topic (the message with the History button), once it shows
    every fragment."""
    return wait_message(
        sandbox, PAUL, f"#{number}", *fragments, chat=STAFF, thread=thread, button="📜"
    )


def in_order(text: str, *lines: str) -> None:
    """Every line is in ``text``, in this order."""
    at = 0
    for line in lines:
        found = text.find(line, at)
        assert found >= 0, f"{line!r} is not in the history after position {at}:\n{text}"
        at = found + len(line)


def test_two_customers_one_problem_one_answer_one_confirms_one_disputes(
    sandbox: Sandbox,
) -> None:
    # Within support hours, as the sandbox's own story starts.
    assert call(sandbox, "/api/clock", {"step": "to 09:00"})[0] == 200

    # Two customers report the same failure, each in their own chat.
    alice = open_request(
        sandbox, ALICE, "Reports page is down", "The reports page shows error 502 since 9:00."
    )
    boris = open_request(
        sandbox, BORIS, "Отчёты не открываются", "Страница отчётов выдаёт ошибку 502 с утра."
    )
    assert alice != boris
    alice_topic = topic_of(sandbox, alice)
    boris_topic = topic_of(sandbox, boris)

    # The agent links Boris's request to Alice's from its card: the Link menu offers Alice's.
    boris_card = card(sandbox, boris, boris_topic)
    hint = press(sandbox, PAUL, boris_card, "🔗", STAFF)
    assert f"/link PROBLEM {boris}" in hint["text"]
    menu = wait_message(
        sandbox, PAUL, f"#{boris}", chat=STAFF, thread=boris_topic, button=f"#{alice} · "
    )
    linked = press(sandbox, PAUL, menu, f"#{alice} · ", STAFF)
    assert not linked["alert"], linked
    assert f"Linked to problem #{alice}: #{boris}" in linked["text"]
    card(sandbox, boris, boris_topic, f"/ticket_{alice}")  # "linked to problem #A"
    card(sandbox, alice, alice_topic, "🧩")  # the problem's count of incidents
    # Boris is told once that it is a known problem, and /my says so too.
    known = wait_message(sandbox, BORIS, "известной нам проблемы", f"#{boris}")
    mine = say(sandbox, BORIS, "/my")
    wait_message(sandbox, BORIS, f"#{boris}", "известная проблема", after=mine)

    # One answer in the problem's topic: Alice gets it as any answer; the offer under it sends
    # it to Boris too, on his own request.
    news = "We found the cause: a failed update of the reports server. Rolling it back now."
    answer = say(sandbox, PAUL, news, chat=STAFF, thread=alice_topic)
    offer = wait_message(
        sandbox, PAUL, "Send them this answer too?", chat=STAFF, thread=alice_topic, button="📣"
    )
    assert offer["reply"]["id"] == answer  # drawn under the answer, with its button
    told = press(sandbox, PAUL, offer, "📣", STAFF)
    assert "Sent to 1 linked customer" in told["text"], told
    wait_message(sandbox, ALICE, news)
    wait_message(sandbox, BORIS, news, after=known["id"])
    # The offer says it was taken instead of offering again.
    wait_message(sandbox, PAUL, "Sent to 1 linked customer", chat=STAFF, thread=alice_topic)

    # The agent resolves the problem with a final answer; resolve-all asks Boris too.
    press(sandbox, PAUL, card(sandbox, alice, alice_topic), "✅", STAFF)
    prompt = wait_message(sandbox, PAUL, "Reply to this message", chat=STAFF, thread=alice_topic)
    fixed = "The reports server is back: reports load again. Please check on your side."
    say(sandbox, PAUL, fixed, chat=STAFF, thread=alice_topic, reply_to=prompt["id"])
    offer = wait_message(
        sandbox, PAUL, "Resolve it with the same answer?", chat=STAFF, thread=alice_topic
    )
    assert buttons(offer) == ["✅ Resolve the 1 linked request"]
    resolved = press(sandbox, PAUL, offer, "✅", STAFF)
    assert "1 linked request of" in resolved["text"], resolved

    # Both customers get the answer and the question; Alice confirms, Boris disputes.
    wait_message(sandbox, ALICE, fixed)
    alice_question = wait_message(sandbox, ALICE, "Is the problem solved?", f"#{alice}")
    assert buttons(alice_question) == ["👍 Solved", "👎 Not solved"]
    wait_message(sandbox, BORIS, fixed)
    boris_question = wait_message(sandbox, BORIS, "Проблема решена?", f"#{boris}")
    assert buttons(boris_question) == ["👍 Решено", "👎 Не решено"]
    press(sandbox, ALICE, alice_question, "👍", ALICE)
    wait_message(sandbox, ALICE, f"Request #{alice} is closed")
    press(sandbox, BORIS, boris_question, "👎", BORIS)
    # He is asked what is still wrong; his answer reopens his request.
    wait_message(sandbox, BORIS, f"#{boris}", "не так", after=boris_question["id"])
    reason = "Отчёты всё ещё не открываются: теперь ошибка 504."
    sent = say(sandbox, BORIS, reason)
    wait_message(sandbox, BORIS, f"#{boris}", "открыто снова", after=sent)
    # Staff hear the reason in Boris's topic; his card no longer names the problem.
    wait_message(sandbox, PAUL, reason, chat=STAFF, thread=boris_topic)
    reopened = card(sandbox, boris, boris_topic, "В работе")
    assert f"/ticket_{alice}" not in plain(reopened)
    # The chat list sums up each topic's last message, a renamed topic's too.
    assert all(entry["preview"] != "…" for entry in view(sandbox, PAUL)["chats"])

    # Each ticket's history tells the story (the agent reads it in English).
    press(sandbox, PAUL, card(sandbox, alice, alice_topic), "📜", STAFF)
    story = plain(
        wait_message(sandbox, PAUL, f"History of #{alice}", chat=STAFF, thread=alice_topic)
    )
    in_order(
        story,
        "Alice Walker: registered the request",
        f"Paul Meyer: linked as incidents of this problem: #{boris}",
        "Paul Meyer: answered the customer",
        "Paul Meyer: sent an answer to 1 linked customer",
        "Paul Meyer: resolved 1 linked request",
        "Alice Walker: confirmed by the customer",
        f"Борис Петров: #{boris} unlinked from this problem",
    )
    press(sandbox, PAUL, card(sandbox, boris, boris_topic), "📜", STAFF)
    story = plain(
        wait_message(sandbox, PAUL, f"History of #{boris}", chat=STAFF, thread=boris_topic)
    )
    in_order(
        story,
        "Борис Петров: registered the request",
        f"Paul Meyer: linked to problem #{alice}",
        f"Paul Meyer: answered the customer (the answer of problem #{alice})",
        f"Paul Meyer: answered the customer (the answer of problem #{alice})",
        f"Борис Петров: disputed the answer: {reason}",
        f"Борис Петров: unlinked from problem #{alice}",
    )
    assert f"🔗 Linked to problem /ticket_{alice}" not in story

    # Each customer heard everything once: no answer twice, one word of the known problem.
    alice_chat = [plain(m) for m in view(sandbox, ALICE)["messages"]]
    boris_chat = [plain(m) for m in view(sandbox, BORIS)["messages"]]
    assert alice_chat.count(news) == boris_chat.count(news) == 1
    assert alice_chat.count(fixed) == boris_chat.count(fixed) == 1
    assert sum("известной нам проблемы" in text for text in boris_chat) == 1
    assert not any("already know of" in text for text in alice_chat)  # hers is the problem
    assert "Traceback" not in sandbox.log()
