"""The outbox: a Bot API call recorded in the transaction of the change that causes it.

The caller's commit makes a delivery real; :mod:`bot.delivery.sender` sends it afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery
from bot.db.repositories import DeliveryRepo
from bot.delivery.intents import (
    Intent,
    Refs,
    Tags,
    context_of,
)

ALBUM_GRACE = timedelta(seconds=1.0)
# A coalesced relay waits this long for more of the customer's messages before it may go.
COALESCE_GRACE = timedelta(seconds=2.0)


class Outbox:
    """Records deliveries in the caller's session; the caller's commit makes them real."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def add(self, session: AsyncSession, intent: Intent) -> Delivery:
        now = self.clock.now()
        delivery = Delivery(
            created_at=now,
            chat_id=intent.chat_id,
            stream=intent.stream or stream_of(intent.chat_id, intent.subject),
            rank=intent.rank,
            method=intent.method.__name__,
            payload=dict(intent.payload),
            status="pending",
            attempts=0,
            not_before=now + intent.delay,
            purpose=intent.purpose,
            ticket_number=intent.subject,
            context=context_of(intent.refs, intent.tags),
        )
        DeliveryRepo(session).add(delivery)
        return delivery

    @staticmethod
    def revise(delivery: Delivery, payload: dict[str, Any], tags: Tags) -> None:
        """A pending delivery that grew (an album's next part, one more coalesced message).
        New objects, so the JSON columns are seen as changed."""
        delivery.payload = dict(payload)
        delivery.context = context_of(Refs.of(delivery), tags)


def stream_of(chat_id: int, ticket_number: int | None) -> str:
    """Private chats: one stream per chat (a customer reads one conversation in order).
    Groups: one stream per ticket, so one busy ticket does not hold up the others."""
    if chat_id > 0 or ticket_number is None:
        return str(chat_id)
    return f"{chat_id}:{ticket_number}"
