"""The ticket's card in the staff group: posted once, then edited in place (SPEC §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aiogram import methods
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, Ticket, User
from bot.db.repositories import TicketRepo, UserRepo
from bot.domain.sla import Sla, first_response
from bot.domain.tickets import Status
from bot.keyboards import staff as kb
from bot.services.delivery import Outbox, topic_name
from bot.services.desk_config import DeskConfig
from bot.views import staff as staff_views
from bot.views import tickets as views


def display_name(user: User | None, fallback: int | None = None) -> str:
    if user is None:
        return str(fallback) if fallback is not None else "—"
    name = " ".join(filter(None, (user.first_name, user.last_name)))
    return name or (f"@{user.username}" if user.username else str(user.id))


class Cards:
    def __init__(self, *, outbox: Outbox, i18n: I18n, config: DeskConfig, clock: Clock) -> None:
        self.clock = clock
        self.outbox = outbox
        self.i18n = i18n
        self.config = config

    async def render(self, session: AsyncSession, ticket: Ticket) -> tuple[str, dict[str, Any]]:
        users = UserRepo(session)
        customer = await users.get(ticket.customer_id)
        assignee = await users.get(ticket.assignee_id) if ticket.assignee_id else None
        attachments = await TicketRepo(session).count_attachments(ticket.number)
        data = views.CardData(
            number=ticket.number,
            kind=ticket.kind,
            priority=ticket.priority,
            status=ticket.status,
            topic=ticket.topic,
            account_number=ticket.account_number,
            description=ticket.description,
            customer_id=ticket.customer_id,
            customer_name=display_name(customer, ticket.customer_id),
            customer_username=customer.username if customer else None,
            customer_locale=ticket.locale,
            assignee_name=display_name(assignee, ticket.assignee_id)
            if ticket.assignee_id
            else None,
            line=ticket.line,
            created_at=ticket.created_at,
            attachments=attachments,
            reopened=ticket.reopened_count,
        )
        locale = self.config.default_locale
        with self.i18n.use_locale(locale):
            if ticket.status is not Status.CLOSED:
                data = replace(data, sla=staff_views.sla_line(self.sla(ticket), locale))
            text = views.staff_card(data, tz=self.config.tz, locale=locale)
            markup = kb.card(ticket.number, ticket.status)
        return text, markup.model_dump(mode="json", exclude_none=True)

    def sla(self, ticket: Ticket) -> Sla:
        return first_response(
            self.config.hours,
            self.config.sla_targets[ticket.priority],
            created_at=ticket.created_at,
            now=self.clock.now(),
            first_response_at=ticket.first_response_at,
            paused_seconds=ticket.paused_seconds or 0,
            waiting_since=ticket.waiting_since,
        )

    async def post(
        self, session: AsyncSession, ticket: Ticket, media: Sequence[Sequence[dict[str, Any]]]
    ) -> None:
        """The card, then the screenshots as replies to it."""
        card = self._send_card(session, ticket, *await self.render(session, ticket))
        await session.flush()  # the card's id: the screenshots reply to it
        for group in media:
            self.add_media(session, ticket, group, {"reply_to_delivery": card.id}, "card_media")

    async def repost(self, session: AsyncSession, ticket: Ticket) -> None:
        """The card again, as the ticket's card from now on (its topic was deleted with the
        old one): later edits go to this one."""
        # Called from the sender, outside any update: the i18n context is ours to set.
        with self.i18n.context():
            text, markup = await self.render(session, ticket)
        self._send_card(session, ticket, text, markup)

    def _send_card(
        self, session: AsyncSession, ticket: Ticket, text: str, markup: dict[str, Any]
    ) -> Delivery:
        """A card message: the sender makes it the ticket's card (``purpose="card"``)."""
        staff = self.config.staff_chat_id
        return self.outbox.add(
            session,
            chat_id=staff,
            method=methods.SendMessage,
            payload={"chat_id": staff, "text": text, "reply_markup": markup},
            purpose="card",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"customer_chat_id": ticket.customer_id},
        )

    async def refresh(self, session: AsyncSession, ticket: Ticket) -> None:
        """Edit the card in place; it follows the card in the same stream, so it finds it."""
        staff = self.config.staff_chat_id
        text, markup = await self.render(session, ticket)
        self.outbox.add(
            session,
            chat_id=staff,
            method=methods.EditMessageText,
            payload={"chat_id": staff, "text": text, "reply_markup": markup},
            purpose="card_edit",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"edit_card": True},
        )
        if self.config.staff_is_forum:
            # The topic's name shows the status; a closed ticket's topic is closed.
            # (message_thread_id 0 is filled in with the ticket's topic when sent.)
            self.outbox.add(
                session,
                chat_id=staff,
                method=methods.EditForumTopic,
                payload={"chat_id": staff, "message_thread_id": 0, "name": topic_name(ticket)},
                purpose="topic",
                ticket_number=ticket.number,
                rank=int(ticket.priority),
            )
            if ticket.status is Status.CLOSED:
                self.outbox.add(
                    session,
                    chat_id=staff,
                    method=methods.CloseForumTopic,
                    payload={"chat_id": staff, "message_thread_id": 0},
                    purpose="topic",
                    ticket_number=ticket.number,
                    rank=int(ticket.priority),
                )

    def add_media(
        self,
        session: AsyncSession,
        ticket: Ticket,
        media: Sequence[dict[str, Any]],
        context: dict[str, Any],
        purpose: str,
    ) -> None:
        staff = self.config.staff_chat_id
        context = {**context, "customer_chat_id": ticket.customer_id}
        if len(media) == 1:
            item = media[0]
            single: dict[str, type[methods.TelegramMethod[Any]]] = {
                "photo": methods.SendPhoto,
                "document": methods.SendDocument,
                "video": methods.SendVideo,
                "audio": methods.SendAudio,
            }
            payload = {"chat_id": staff, item["type"]: item["media"]}
            payload.update({k: v for k, v in item.items() if k in ("caption", "caption_entities")})
            self.outbox.add(
                session,
                chat_id=staff,
                method=single[item["type"]],
                payload=payload,
                purpose=purpose,
                ticket_number=ticket.number,
                rank=int(ticket.priority),
                context=context,
            )
            return
        self.outbox.add(
            session,
            chat_id=staff,
            method=methods.SendMediaGroup,
            payload={"chat_id": staff, "media": list(media)},
            purpose=purpose,
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context=context,
        )

    def post_to_ticket(
        self, session: AsyncSession, ticket: Ticket, text: str, *, purpose: str = "staff_note"
    ) -> None:
        """A message for staff about a ticket: in its topic, or as a reply to its card.
        ``purpose`` "relay" for the customer's own words (a reply to it is an answer)."""
        staff = self.config.staff_chat_id
        self.outbox.add(
            session,
            chat_id=staff,
            method=methods.SendMessage,
            payload={"chat_id": staff, "text": text},
            purpose=purpose,
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"reply_to_card": True, "customer_chat_id": ticket.customer_id},
        )
