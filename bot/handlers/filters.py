"""Filters shared by the audiences' routers."""

from aiogram.types import Message


async def looks_like_command(message: Message) -> bool:
    """Whether aiogram's ``Command`` filters could match the message at all: its text or
    caption starts with ``/`` (they split off leading blanks too).

    Put on a router whose message handlers are all commands, it is one check for a message
    that is none — a customer's follow-up, most messages the desk gets — instead of one per
    command (each parsing the text again). A coroutine function: aiogram runs a synchronous
    filter in a thread of its own."""
    text = message.text or message.caption
    return text is not None and text.lstrip().startswith("/")
