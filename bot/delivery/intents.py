"""Typed delivery intents: what to send, to whom, in which stream, with which rank.

An :class:`Intent` is what a use case hands the outbox. Its :class:`Refs` are what the sender
itself reads (whose turn it is, which earlier delivery it replies to or edits, whether it may
still grow); its ``tags`` are the use case's own typed record of what the delivery is (say,
which customer messages a relay copies), read back by the outcome handlers that use case
registered. Both are kept in the delivery's ``context`` column as one flat JSON object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, Self

from aiogram.methods.base import TelegramMethod
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

# Lower ranks go first: a customer who is waiting for us, then tickets by priority (1..4).
RANK_CUSTOMER_WAITING = 0
RANK_DEFAULT = 5


class HasContext(Protocol):
    """A delivery, or what the sender weighs of one (``bot.db.repositories.DueHead``)."""

    @property
    def context(self) -> dict[str, Any] | None: ...


class Tags(BaseModel):
    """Base of the use cases' typed tags; unknown keys (the sender's own) are ignored."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def of(cls, delivery: HasContext) -> Self:
        return cls.model_validate(delivery.context or {})


class Refs(Tags):
    """What the sender reads of a delivery besides its call."""

    # Whose turn it is: staff-side deliveries are fair between the people they are about.
    party: int | None = Field(
        default=None, validation_alias=AliasChoices("party", "customer_chat_id")
    )
    reply_to_delivery: int | None = None  # reply to the message that delivery made
    target_delivery: int | None = None  # edit the message that delivery made
    # Later messages may still join it while it waits (an album, a coalesced relay): what is
    # sent is what it holds when claimed.
    grows: bool = False
    # It may leave in one call with the deliveries queued right behind it (the services say
    # how: :attr:`Outcomes.join`).
    joins: bool = False

    @model_validator(mode="before")
    @classmethod
    def _grows_by_shape(cls, data: Any) -> Any:
        # Rows written before ``grows`` existed said it with these keys.
        shaped = isinstance(data, dict) and (data.get("media_group_id") or data.get("coalesced"))
        return {**data, "grows": True} if shaped else data


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    chat_id: int
    method: type[TelegramMethod[Any]]
    payload: Mapping[str, Any]
    purpose: str  # what it is, for the outcome handlers and the history ("card", "relay"...)
    # What it is about (a ticket's number): in a group, one stream and one topic per subject.
    subject: int | None = None
    rank: int = RANK_DEFAULT
    stream: str | None = None
    refs: Refs = field(default_factory=Refs)
    tags: Tags | None = None
    delay: timedelta = timedelta(0)


def context_of(refs: Refs, tags: Tags | None) -> dict[str, Any] | None:
    """The flat JSON kept in ``Delivery.context``."""
    context = refs.model_dump(exclude_defaults=True)
    if tags is not None:
        context.update(tags.model_dump(mode="json", exclude_defaults=True))
    return context or None
