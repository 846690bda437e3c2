"""What delivery outcomes mean for the desk: the handlers the services register with the sender
(``bot/delivery/outcomes.py``). The sender knows deliveries; this module knows tickets.

- a card was posted → it is the ticket's card (its message id, for edits and replies);
- any message of a ticket was sent → the message map (which message is which on both sides);
- a ticket's first staff-side message in a forum group → its topic, created on the way;
- a customer's chat refused → the customer is marked as having blocked the bot, staff are told;
- the staff group moved (upgraded to a supergroup) → every process follows it;
- the bot lost access to the staff group → managers are told in private, once, and again
  when it is back; the queue meanwhile waits, intact.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiogram import methods
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, Ticket
from bot.db.repositories import (
    DeliveryRepo,
    DeskSettings,
    EventRepo,
    LinkRepo,
    TicketRepo,
    UserRepo,
)
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs
from bot.delivery.outbox import Outbox
from bot.delivery.outcomes import (
    Failure,
    FailureKind,
    NothingToSendError,
    Outcomes,
    Placement,
)
from bot.domain.tickets import Status
from bot.services.desk_config import DeskConfig
from bot.services.outgoing import TicketTags
from bot.services.rendering import Renderer

log = logging.getLogger(__name__)

ACCESS_LOST_KEY = "staff_access_lost_at"


@dataclass(frozen=True, slots=True)
class TopicTitle:
    """The name of a ticket's forum topic (its status shows in the list of topics)."""

    number: int
    status: Status
    topic: str


@dataclass(frozen=True, slots=True)
class StaffGroupLost:
    """To a manager: the bot can no longer post to the staff group."""

    chat_id: int
    error: str


@dataclass(frozen=True, slots=True)
class StaffGroupBack:
    """To a manager: the bot is back in the staff group; what waited is on its way."""

    chat_id: int


@dataclass(frozen=True, slots=True)
class FileTooLarge:
    """To whoever asked for a file (an export, say): Telegram refused it as too large."""

    filename: str
    size: int  # bytes


class DeskOutcomes:
    def __init__(
        self,
        *,
        config: DeskConfig,
        clock: Clock,
        outbox: Outbox,
        render: Renderer,
        managers: frozenset[int],
        undelivered: Callable[[AsyncSession, Delivery, Failure], Awaitable[None]] | None = None,
        repost_card: Callable[[AsyncSession, Ticket], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.outbox = outbox
        self.render = render
        self.managers = managers
        self.undelivered = undelivered
        self.repost_card = repost_card

    def register(self, outcomes: Outcomes) -> Outcomes:
        outcomes.prepare = self.prepare
        outcomes.place = self.place
        outcomes.on_sent(self.remember)
        outcomes.on_failed(self.not_delivered)
        outcomes.on_moved(self.follow)
        outcomes.on_topic_created(self.topic_created)
        outcomes.on_access_lost(self.access_lost)
        outcomes.on_access_back(self.access_back)
        return outcomes

    # -- before a send -------------------------------------------------------------------------

    async def prepare(
        self, session: AsyncSession, delivery: Delivery, payload: dict[str, object]
    ) -> None:
        """The card's message id, known only once the card was sent: what a reply to the card
        replies to, and what an edit of the card edits."""
        tags = TicketTags.of(delivery)
        if delivery.ticket_number is None or not (tags.reply_to_card or tags.edit_card):
            return
        ticket = await TicketRepo(session).get(delivery.ticket_number)
        card = ticket.card_message_id if ticket is not None else None
        if tags.edit_card:
            if card is None:
                raise NothingToSendError(f"ticket {delivery.ticket_number} has no card")
            payload["message_id"] = card
        if tags.reply_to_card and card is not None:
            payload["reply_parameters"] = {"message_id": card, "allow_sending_without_reply": True}

    async def place(
        self, session: AsyncSession, delivery: Delivery, recreate: bool
    ) -> Placement | None:
        """A ticket's messages in a forum staff group go to the ticket's own topic."""
        config = self.config
        topic_call = delivery.method in ("EditForumTopic", "CloseForumTopic")
        threaded = delivery.method in _THREADED and not delivery.payload.get("message_thread_id")
        if (
            delivery.ticket_number is None
            or not (topic_call or (threaded and config.staff_is_forum))
            or delivery.chat_id != config.staff_chat_id
            or TicketTags.of(delivery).here
        ):
            return None
        ticket = await TicketRepo(session).get(delivery.ticket_number)
        if ticket is None:
            raise NothingToSendError(f"ticket {delivery.ticket_number} is gone")
        if ticket.staff_thread_id is not None and not recreate:
            return Placement(thread_id=ticket.staff_thread_id)
        title = TopicTitle(ticket.number, ticket.status, ticket.topic)
        name = self.render(title, config.default_locale).text[:128]
        return Placement(create_named=name)

    # -- after it --------------------------------------------------------------------------------

    async def topic_created(
        self, session: AsyncSession, row: Delivery, topic: int, recreated: bool
    ) -> None:
        if row.ticket_number is None:
            return
        ticket = await TicketRepo(session).get(row.ticket_number)
        if ticket is None:
            return
        ticket.staff_thread_id = topic
        ticket.staff_chat_id = row.chat_id
        if recreated and self.repost_card is not None:
            # The card went with the old topic: staff need its buttons here.
            await self.repost_card(session, ticket)

    async def remember(self, session: AsyncSession, row: Delivery, ids: list[int]) -> None:
        """The ticket's card, and which message is which, so replies on either side find
        their ticket. Edits and other calls make no new message: nothing to map."""
        if (
            row.ticket_number is None
            or not ids
            or not row.method.startswith(("Send", "Copy", "Forward"))
        ):
            return
        if row.purpose == "card":
            ticket = await TicketRepo(session).get(row.ticket_number)
            if ticket is not None:
                ticket.card_message_id = ids[0]
                ticket.staff_chat_id = row.chat_id
        customer_chat_id = Refs.of(row).party
        if customer_chat_id is None:
            ticket = await TicketRepo(session).get(row.ticket_number)
            if ticket is None:
                return
            customer_chat_id = ticket.customer_id
        await self._link(session, row, int(customer_chat_id), ids, self.clock.now())

    async def _link(
        self,
        session: AsyncSession,
        row: Delivery,
        customer_chat_id: int,
        ids: Sequence[int],
        now: datetime,
    ) -> None:
        assert row.ticket_number is not None
        tags = TicketTags.of(row)
        if row.chat_id == customer_chat_id:
            # Copies of staff messages remember their source, so edits and replies find it.
            staff_ids = tags.staff_message_ids
            links = [
                {
                    "customer_message_id": message_id,
                    "staff_chat_id": self.config.staff_chat_id if index < len(staff_ids) else None,
                    "staff_message_id": staff_ids[index] if index < len(staff_ids) else None,
                }
                for index, message_id in enumerate(ids)
            ]
        else:
            sources = tags.customer_message_ids
            links = [
                {
                    "customer_message_id": sources[index] if index < len(sources) else None,
                    "staff_chat_id": row.chat_id,
                    "staff_message_id": message_id,
                }
                for index, message_id in enumerate(ids)
            ]
        # Messages joined into one coalesced text: each still belongs to the ticket (a reply
        # to it finds the ticket), but none is "the" source of the joined copy, so an edit
        # of one never overwrites the others.
        links += [
            {"customer_message_id": message_id, "staff_chat_id": None, "staff_message_id": None}
            for message_id in tags.coalesced_message_ids
        ]
        common = {
            "ticket_number": row.ticket_number,
            "direction": row.purpose,
            "customer_chat_id": customer_chat_id,
            "created_at": now,
        }
        await LinkRepo(session).add_many([{**common, **link} for link in links])

    async def not_delivered(self, session: AsyncSession, row: Delivery, failure: Failure) -> None:
        """Failed for good: the history says so, and people are told, not left with silence."""
        now = self.clock.now()
        if failure.kind is FailureKind.TOO_LARGE:
            self._file_refused(session, row, await self._locale_of(session, row.chat_id))
        if row.chat_id > 0 and failure.kind is FailureKind.FORBIDDEN:
            user = await UserRepo(session).get(row.chat_id)
            if user is not None and user.blocked_bot_at is None:
                user.blocked_bot_at = now
        if row.ticket_number is None:
            return
        EventRepo(session).record(
            row.ticket_number,
            at=now,
            type="delivery_failed",
            actor_id=None,
            actor_role="system",
            new=row.purpose,
            details={"chat_id": row.chat_id, "error": row.error, "kind": str(failure.kind)},
        )
        if row.chat_id > 0 and self.undelivered is not None:
            # Staff see in the ticket that the customer did not get it.
            await self.undelivered(session, row, failure)

    def _file_refused(self, session: AsyncSession, row: Delivery, locale: str) -> None:
        """Said in the chat the file was for (the ticket's topic, a manager's chat): at once,
        instead of the file blocking that chat's queue with retries that cannot succeed."""
        files = [v for v in row.payload.values() if isinstance(v, dict) and "__file_b64" in v]
        if not files:
            return
        name = str(files[0].get("filename") or "file")
        size = len(str(files[0]["__file_b64"])) * 3 // 4
        rendered = self.render(FileTooLarge(name, size), locale)
        self.outbox.add(
            session,
            Intent(
                chat_id=row.chat_id,
                method=methods.SendMessage,
                payload={"chat_id": row.chat_id, "text": rendered.text},
                purpose="notice",
                subject=row.ticket_number,
                rank=RANK_CUSTOMER_WAITING,
            ),
        )

    async def _locale_of(self, session: AsyncSession, chat_id: int) -> str:
        if chat_id < 0:
            return self.config.default_locale
        user = await UserRepo(session).get(chat_id)
        return (user.locale if user is not None else None) or self.config.default_locale

    async def follow(self, session: AsyncSession, old_chat_id: int, new_chat_id: int) -> None:
        """The staff group was upgraded to a supergroup: every process follows it."""
        if self.config.staff_chat_id != old_chat_id:
            return
        log.warning("the staff group moved: %s -> %s", old_chat_id, new_chat_id)
        self.config.staff_chat_id = new_chat_id
        await DeskSettings(session).put("staff_chat_id", str(new_chat_id))

    # -- access to the staff group ---------------------------------------------------------------

    async def access_lost(self, session: AsyncSession, chat_id: int, error: str = "") -> None:
        """Managers hear it once, in private; the staff-side queue waits (the sender keeps it)."""
        if chat_id != self.config.staff_chat_id:
            return
        settings = DeskSettings(session)
        if await settings.get(ACCESS_LOST_KEY):
            return
        log.error("the bot has lost access to the staff group %s", chat_id)
        await settings.put(ACCESS_LOST_KEY, self.clock.now().isoformat())
        await self._tell_managers(session, StaffGroupLost(chat_id, error))

    async def access_back(self, session: AsyncSession, chat_id: int) -> None:
        if chat_id != self.config.staff_chat_id:
            return
        settings = DeskSettings(session)
        if not await settings.get(ACCESS_LOST_KEY):
            return
        log.warning("the bot is back in the staff group %s", chat_id)
        await settings.put(ACCESS_LOST_KEY, "")
        # What waited for the group goes now, not at its next try.
        await DeliveryRepo(session).due_now(chat_id, self.clock.now())
        await self._tell_managers(session, StaffGroupBack(chat_id))

    async def _tell_managers(self, session: AsyncSession, notice: object) -> None:
        for manager in sorted(self.managers):
            rendered = self.render(notice, await self._locale_of(session, manager))
            self.outbox.add(
                session,
                Intent(
                    chat_id=manager,
                    method=methods.SendMessage,
                    payload={"chat_id": manager, "text": rendered.text},
                    purpose="notice",
                    rank=RANK_CUSTOMER_WAITING,
                ),
            )


# Calls that can carry ``message_thread_id`` (sent into a topic); edits stay where they are.
_THREADED = frozenset(
    {
        "SendMessage",
        "CopyMessage",
        "CopyMessages",
        "ForwardMessage",
        "SendMediaGroup",
        "SendPhoto",
        "SendDocument",
        "SendVideo",
        "SendAudio",
        "SendVoice",
        "SendSticker",
        "SendAnimation",
    }
)
