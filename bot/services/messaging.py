"""Replies to people go through the outbox too: recorded with the change that causes them,
sent after it is committed. A reply is therefore never sent for a change that was then lost
(a kill before the commit), nor lost after the change was kept."""

from __future__ import annotations

from typing import Any

from aiogram import methods
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Delivery
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs
from bot.delivery.outbox import Outbox


def _markup(markup: InlineKeyboardMarkup | None) -> dict[str, Any] | None:
    return None if markup is None else markup.model_dump(mode="json", exclude_none=True)


class Messenger:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def send(
        self,
        session: AsyncSession,
        chat_id: int,
        text: str,
        reply_markup: InlineKeyboardMarkup | None = None,
        *,
        reply_to_message_id: int | None = None,
        purpose: str = "reply",
        ticket_number: int | None = None,
        thread_id: int | None = None,
    ) -> Delivery:
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if thread_id is not None:
            payload["message_thread_id"] = thread_id
        if reply_markup is not None:
            payload["reply_markup"] = _markup(reply_markup)
        if reply_to_message_id is not None:
            payload["reply_parameters"] = {
                "message_id": reply_to_message_id,
                "allow_sending_without_reply": True,
            }
        delivery = self.outbox.add(
            session,
            Intent(
                chat_id=chat_id,
                method=methods.SendMessage,
                payload=payload,
                purpose=purpose,
                subject=ticket_number,
                rank=RANK_CUSTOMER_WAITING,
            ),
        )
        await session.flush()  # callers keep the id to edit the message later
        return delivery

    def edit(
        self,
        session: AsyncSession,
        chat_id: int,
        text: str,
        reply_markup: InlineKeyboardMarkup | None = None,
        *,
        message_id: int | None = None,
        sent_by: int | None = None,
    ) -> Delivery:
        """Edit a message known by id, or the one that delivery ``sent_by`` produced."""
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if message_id is not None:
            payload["message_id"] = message_id
        if reply_markup is not None:
            payload["reply_markup"] = _markup(reply_markup)
        return self.outbox.add(
            session,
            Intent(
                chat_id=chat_id,
                method=methods.EditMessageText,
                payload=payload,
                purpose="edit",
                rank=RANK_CUSTOMER_WAITING,
                refs=Refs(target_delivery=sent_by),
            ),
        )
