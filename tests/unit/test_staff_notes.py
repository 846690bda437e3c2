"""Which staff messages are notes by their own mark (SPEC §5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.services.staff.relay import CUSTOMER_SIDE, HINT, NOTE, PROMPTS, note_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("!check the logs", "check the logs"),
        ("! spaced", "spaced"),
        ("!", ""),
        ("/note the bank is slow", "the bank is slow"),
        ("/note@ecomet_support_bot see above", "see above"),
        ("/NOTE loud", "loud"),
        ("/note", ""),
        ("/note\nmulti\nline", "multi\nline"),
    ],
)
def test_marked_messages_are_notes(text: str, note: str) -> None:
    assert note_text(text) == note


@pytest.mark.parametrize(
    "text", ["Hello!", " !not at the start", "/notes are elsewhere", "/noted", "", "/queue"]
)
def test_other_messages_are_not(text: str) -> None:
    assert note_text(text) is None


def test_what_carries_an_answer_is_what_the_bot_posts() -> None:
    """Link directions are the purposes of the deliveries that posted the messages, free
    strings: a renamed purpose would silently turn replies to it into notes."""
    sources = "\n".join(path.read_text() for path in (ROOT / "bot" / "services").rglob("*.py"))
    posted = set(re.findall(r'"([a-z_]+)"', sources))  # purpose="card", or passed on
    assert posted >= CUSTOMER_SIDE | PROMPTS, (CUSTOMER_SIDE | PROMPTS) - posted
    assert not (CUSTOMER_SIDE | PROMPTS) & {NOTE, HINT, "staff_note", "answer"}
    # The column holds 16 characters.
    assert all(len(direction) <= 16 for direction in CUSTOMER_SIDE | PROMPTS | {NOTE, HINT})
