"""The routers whose handlers are all commands are gated by ``looks_like_command``: one check
for a message that is none. The gate must never hide a message that aiogram's ``Command``
filter would take for a command, from a text or a caption."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.filters import Command
from aiogram.filters.command import CommandException
from aiogram.types import Chat, Message
from hypothesis import given
from hypothesis import strategies as st

from bot.handlers.filters import looks_like_command

# Blanks of several kinds (str.split() splits on all of them), the prefix, words, a mention.
TEXTS = st.text(alphabet=" \t\n\u00a0\u2003/@!abc", max_size=12)


def _message(text: str | None = None, caption: str | None = None) -> Message:
    return Message(
        message_id=1,
        date=datetime(2026, 1, 1, tzinfo=UTC),
        chat=Chat(id=7, type="private"),
        text=text,
        caption=caption,
    )


def _command_prefix(text: str) -> str | None:
    try:
        return Command.extract_command(text).prefix
    except CommandException:
        return None


@given(TEXTS, st.booleans())
async def test_the_gate_lets_through_whatever_aiogram_takes_for_a_command(
    text: str, as_caption: bool
) -> None:
    message = _message(caption=text) if as_caption else _message(text=text)
    passes = await looks_like_command(message)
    if text and _command_prefix(text) == "/":
        assert passes, repr(text)
    # ... and nothing else: a message that is no command skips the command routers.
    assert passes == text.lstrip().startswith("/")


async def test_examples() -> None:
    assert await looks_like_command(_message("/help"))
    assert await looks_like_command(_message(" /start ref-42"))
    assert await looks_like_command(_message(caption="/new"))
    assert not await looks_like_command(_message("my order is still not paid / help"))
    assert not await looks_like_command(_message())
