"""What the desk sends a ticket's customer: one "tell the customer" and one "copy the staff
answer", shared by every use case that does either (staff, resolution, macros, problems)."""

from __future__ import annotations

from typing import Any

from aiogram import methods
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Delivery, Ticket
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs, Tags
from bot.delivery.outbox import Outbox
from bot.services.lifecycle import customer_locale
from bot.services.rendering import Renderer


def to_customer(
    outbox: Outbox,
    session: AsyncSession,
    ticket: Ticket,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    *,
    purpose: str = "notice",
) -> Delivery:
    """A message to a ticket's customer: urgent, in their chat's stream, mapped to the ticket."""
    payload: dict[str, Any] = {"chat_id": ticket.customer_id, "text": text}
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    return outbox.add(
        session,
        Intent(
            chat_id=ticket.customer_id,
            method=methods.SendMessage,
            payload=payload,
            purpose=purpose,
            subject=ticket.number,
            rank=RANK_CUSTOMER_WAITING,
            refs=Refs(party=ticket.customer_id),
        ),
    )


async def tell_customer(
    outbox: Outbox,
    render: Renderer,
    session: AsyncSession,
    ticket: Ticket,
    notice: object,
    *,
    purpose: str = "notice",
) -> Delivery:
    """Tell the ticket's customer ``notice``, rendered in their language (their own choice, else
    the one they wrote the request in); works outside updates too (timers)."""
    told = render(notice, await customer_locale(session, ticket))
    return to_customer(outbox, session, ticket, told.text, told.reply_markup, purpose=purpose)


def copy_answer(
    outbox: Outbox,
    session: AsyncSession,
    ticket: Ticket,
    *,
    from_chat_id: int,
    message_id: int,
    reply_to: int | None = None,
    purpose: str = "answer",
    content: dict[str, Any] | None = None,
    shared: bool = False,
) -> Delivery:
    """A staff message copied to the ticket's customer (``reply_to``: the customer's message it
    answers). The copy remembers its source, so the staff member's later edits and the
    customer's replies find it. ``content``: what the message says (HTML, files), for a
    customer who writes by e-mail: a mail cannot copy a Telegram message. ``shared``: one
    staff message sent to many customers (a problem's answer to its linked incidents): each
    copy still belongs to its ticket, but only the problem's own copy is the message's copy
    (a staff message has one copy its edits follow)."""
    payload: dict[str, Any] = {
        "chat_id": ticket.customer_id,
        "from_chat_id": from_chat_id,
        "message_id": message_id,
    }
    if reply_to is not None:
        payload["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
    return outbox.add(
        session,
        Intent(
            chat_id=ticket.customer_id,
            method=methods.CopyMessage,
            payload=payload,
            purpose=purpose,
            subject=ticket.number,
            rank=RANK_CUSTOMER_WAITING,
            refs=Refs(party=ticket.customer_id),
            tags=TicketTags(staff_message_ids=[] if shared else [message_id], mail=content),
        ),
    )


class TicketTags(Tags):
    """What the desk's outcome handlers (``bot/services/desk_outcomes.py``) need to know of a
    delivery about a ticket, beyond its call."""

    reply_to_card: bool = False  # reply to the ticket's card (its id known only once posted)
    edit_card: bool = False  # edit the ticket's card
    # The message map: which customer / staff messages this delivery copies (or joins).
    customer_message_ids: list[int] = Field(default_factory=list)
    staff_message_ids: list[int] = Field(default_factory=list)
    coalesced_message_ids: list[int] = Field(default_factory=list)
    media_group_id: str | None = None  # an album taking in its parts
    # A coalesced relay (SPEC §8): "text" (joined texts) or "copies" (one copyMessages), and
    # for texts what it holds so far.
    coalesced: str | None = None
    body: str | None = None
    chars: int = 0
    count: int = 0
    first: float | None = None  # timestamps of the first and last message joined
    last: float | None = None
    # A single relayed text (HTML, the customer's entities kept) and when it was written: what
    # a join at send time (bot/services/coalescing.py) puts together, and a digest quotes.
    text: str | None = None
    sent: float | None = None
    name: str | None = None  # ... and who wrote it, as a joined text's header names them
    digest: int | None = None  # the burst digest (a delivery) that shows it to staff
    here: bool = False  # posted where it was asked for, not in the ticket's own topic
    # A staff answer to a customer who writes by e-mail: its HTML and files (bot/delivery/mail).
    mail: dict[str, Any] | None = None
