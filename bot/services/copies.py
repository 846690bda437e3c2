"""Edits carried between a message and its copy on the other side of the relay."""

from __future__ import annotations

from typing import Any

from aiogram import methods
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Ticket
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs
from bot.delivery.outbox import Outbox


def edit_copy(
    outbox: Outbox,
    session: AsyncSession,
    ticket: Ticket,
    chat_id: int,
    copy_id: int,
    message: Message,
) -> None:
    """Carry an edit of ``message`` to its copy ``copy_id`` in ``chat_id``."""
    entities = message.entities if message.text is not None else message.caption_entities
    payload: dict[str, object] = {"chat_id": chat_id, "message_id": copy_id}
    if entities:
        payload["parse_mode"] = None
        key = "entities" if message.text is not None else "caption_entities"
        payload[key] = [e.model_dump(mode="json", exclude_none=True) for e in entities]
    if message.text is not None:
        method: type[methods.TelegramMethod[Any]] = methods.EditMessageText
        payload["text"] = message.text
    elif message.caption is not None:
        method = methods.EditMessageCaption
        payload["caption"] = message.caption
    else:
        return
    outbox.add(
        session,
        Intent(
            chat_id=chat_id,
            method=method,
            payload=dict(payload),
            purpose="edit",
            subject=ticket.number,
            rank=RANK_CUSTOMER_WAITING if chat_id > 0 else int(ticket.priority),
            refs=Refs(party=ticket.customer_id),
        ),
    )
