"""What the sender reports, and to whom: the contract between delivery and the use cases.

The sender knows deliveries, streams and limits. What a sent or failed delivery *means* (a card
was posted: remember its message id; a customer blocked the bot: mark them and tell staff; the
staff group moved: follow it) belongs to the services, which register handlers here. The
sender calls them inside the transaction that records the outcome: a sweep's outcomes together,
and if any handler fails, one outcome at a time with each handler in a savepoint of its own, so
a failing handler is logged and never costs the record of what was sent.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Delivery

log = logging.getLogger(__name__)


class FailureKind(enum.StrEnum):
    RETRY = "retry"  # network, 5xx, 429: try again later
    FORBIDDEN = "forbidden"  # the chat refuses the bot (a customer blocked it; kicked from a group)
    NOT_FOUND = "not_found"  # the chat or message is gone
    REFUSED = "refused"  # Telegram refused this call for good (bad request)
    TOO_LARGE = "too_large"  # a file over Telegram's upload limit (413)
    NOTHING_TO_DO = "nothing_to_do"  # an edit of a message that was never sent


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    error: str
    retry_in: float | None = None  # seconds until the next try; None: for good

    @property
    def final(self) -> bool:
        return self.retry_in is None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where in a forum group a delivery goes: a known topic, or a topic to create first."""

    thread_id: int | None = None
    create_named: str | None = None


SentHandler = Callable[[AsyncSession, Delivery, list[int]], Awaitable[None]]
FailedHandler = Callable[[AsyncSession, Delivery, Failure], Awaitable[None]]
ChatHandler = Callable[[AsyncSession, int], Awaitable[None]]
MovedHandler = Callable[[AsyncSession, int, int], Awaitable[None]]
TopicHandler = Callable[[AsyncSession, Delivery, int, bool], Awaitable[None]]
Preparer = Callable[[AsyncSession, Delivery, dict[str, object]], Awaitable[None]]
Placer = Callable[[AsyncSession, Delivery, bool], Awaitable[Placement | None]]


class Joiner(Protocol):
    async def __call__(
        self,
        session: AsyncSession,
        head: Delivery,
        followers: Sequence[Delivery],
        *,
        crowded: bool,
        room: int,
    ) -> list[Delivery]: ...


Digester = Callable[[AsyncSession, int], Awaitable[int]]


class NothingToSendError(Exception):
    """A delivery whose target no longer exists (an edit of a card that was never posted)."""


@dataclass(slots=True)
class Outcomes:
    """Handlers the services register; the sender calls them. Every list may stay empty: a bare
    sender (tests, benchmarks) delivers and records, and nothing else."""

    sent: list[SentHandler] = field(default_factory=list)
    failed: list[FailedHandler] = field(default_factory=list)
    moved: list[MovedHandler] = field(default_factory=list)
    access_lost: list[ChatHandler] = field(default_factory=list)
    access_back: list[ChatHandler] = field(default_factory=list)
    topic_created: list[TopicHandler] = field(default_factory=list)
    # Fill in what is known only at send time (the message id of a card posted since).
    prepare: Preparer | None = None
    # Decide whether a delivery goes to a forum topic, and which (``recreate``: it was deleted).
    place: Placer | None = None
    # Take into a delivery about to go (a relay) the ones queued right behind it, rewriting its
    # call; return those taken. ``crowded``: the chat's queue outgrows its budget; ``room``:
    # how many more messages its budget takes now besides the head's.
    join: Joiner | None = None
    # The chat's queue outgrows its budget: sum up what waits (a digest); return how many
    # queued deliveries that covered (0: nothing new).
    digest: Digester | None = None

    def on_sent(self, handler: SentHandler) -> SentHandler:
        self.sent.append(handler)
        return handler

    def on_failed(self, handler: FailedHandler) -> FailedHandler:
        self.failed.append(handler)
        return handler

    def on_moved(self, handler: MovedHandler) -> MovedHandler:
        self.moved.append(handler)
        return handler

    def on_access_lost(self, handler: ChatHandler) -> ChatHandler:
        self.access_lost.append(handler)
        return handler

    def on_access_back(self, handler: ChatHandler) -> ChatHandler:
        self.access_back.append(handler)
        return handler

    def on_topic_created(self, handler: TopicHandler) -> TopicHandler:
        self.topic_created.append(handler)
        return handler


async def call_each(
    session: AsyncSession,
    handlers: list[Callable[..., Awaitable[None]]],
    *args: object,
    isolated: bool = True,
) -> None:
    """Each handler in a savepoint of its own; one that fails is logged and undone alone.
    Not ``isolated``: no savepoints (two statements each), and a failure is the caller's, who
    undoes the whole transaction and goes again isolated."""
    for handler in handlers:
        if not isolated:
            await handler(session, *args)
            continue
        try:
            async with session.begin_nested():
                await handler(session, *args)
        except Exception:
            log.exception(
                "delivery outcome handler %s failed", getattr(handler, "__qualname__", handler)
            )
