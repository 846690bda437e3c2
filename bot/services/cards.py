"""The ticket's card in the staff group: posted once, then edited in place (SPEC §5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiogram import methods
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, Ticket, User
from bot.db.repositories import AccountRepo, ProblemRepo, TicketRepo, UserRepo
from bot.delivery.intents import Intent, Refs
from bot.delivery.outbox import Outbox
from bot.domain.sla import Sla, first_response
from bot.domain.tickets import Status
from bot.services.desk_config import DeskConfig
from bot.services.desk_outcomes import TopicTitle
from bot.services.notices_staff import Card
from bot.services.outgoing import TicketTags
from bot.services.rendering import Rendered, Renderer


def display_name(user: User | None, fallback: int | None = None) -> str:
    if user is None:
        return str(fallback) if fallback is not None else "—"
    name = " ".join(filter(None, (user.first_name, user.last_name)))
    return name or (f"@{user.username}" if user.username else str(user.id))


class Cards:
    def __init__(
        self, *, outbox: Outbox, config: DeskConfig, clock: Clock, render: Renderer
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.render_notice = render

    async def card(self, session: AsyncSession, ticket: Ticket) -> Card:
        users = UserRepo(session)
        customer = await users.get(ticket.customer_id)
        assignee = await users.get(ticket.assignee_id) if ticket.assignee_id else None
        incidents, incidents_open = (
            await ProblemRepo(session).incident_counts([ticket.number])
        ).get(ticket.number, (0, 0))
        tariffs = self.config.book
        tariff = tariffs.get(ticket.tariff)
        account = await AccountRepo(session).lookup(ticket.account_number)
        return Card(
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
            customer_email=customer.email if customer else None,
            assignee_name=display_name(assignee, ticket.assignee_id)
            if ticket.assignee_id
            else None,
            line=ticket.line,
            created_at=ticket.created_at,
            attachments=await TicketRepo(session).count_attachments(ticket.number),
            reopened=ticket.reopened_count or 0,
            sla=self.sla(ticket) if ticket.status is not Status.CLOSED else None,
            tz=self.config.tz,
            problem=ticket.problem_number,
            incidents=incidents,
            incidents_open=incidents_open,
            tariff=tariff if tariffs.from_file else None,
            outside_tariff=tariffs.from_file and not tariff.covers(ticket.kind),
            organisation=account[1].name if account is not None else None,
        )

    async def render(self, session: AsyncSession, ticket: Ticket) -> Rendered:
        """The card in the desk's language (staff share one group), with its buttons."""
        return self.render_notice(await self.card(session, ticket), self.config.default_locale)

    def sla(self, ticket: Ticket) -> Sla:
        """The first-response SLA on the terms of the ticket's tariff (SPEC §12)."""
        terms = self.config.terms(ticket.tariff, ticket.kind)
        return first_response(
            terms.hours,
            terms.first_response[ticket.priority],
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
        card = self._send_card(session, ticket, await self.render(session, ticket))
        await session.flush()  # the card's id: the screenshots reply to it
        for group in media:
            self.add_media(session, ticket, group, card, "card_media")

    async def repost(self, session: AsyncSession, ticket: Ticket) -> None:
        """The card again, as the ticket's card from now on (its topic was deleted with the
        old one): later edits go to this one."""
        self._send_card(session, ticket, await self.render(session, ticket))

    def _topic(self, ticket: Ticket) -> str:
        """The name of the ticket's forum topic (its status shows in the list of topics)."""
        title = TopicTitle(ticket.number, ticket.status, ticket.topic)
        return self.render_notice(title, self.config.default_locale).text

    def _send_card(self, session: AsyncSession, ticket: Ticket, card: Rendered) -> Delivery:
        """A card message: the sender makes it the ticket's card (``purpose="card"``)."""
        staff = self.config.staff_chat_id
        return self.outbox.add(
            session,
            Intent(
                chat_id=staff,
                method=methods.SendMessage,
                payload={"chat_id": staff, "text": card.text, "reply_markup": card.reply_markup},
                purpose="card",
                subject=ticket.number,
                rank=int(ticket.priority),
                refs=Refs(party=ticket.customer_id),
            ),
        )

    async def refresh(self, session: AsyncSession, ticket: Ticket, *, title: bool = True) -> None:
        """Edit the card in place; it follows the card in the same stream, so it finds it.
        ``title``: the topic's name may have changed too (its status shows in it)."""
        staff = self.config.staff_chat_id
        card = await self.render(session, ticket)
        self.outbox.add(
            session,
            Intent(
                chat_id=staff,
                method=methods.EditMessageText,
                payload={"chat_id": staff, "text": card.text, "reply_markup": card.reply_markup},
                purpose="card_edit",
                subject=ticket.number,
                rank=int(ticket.priority),
                tags=TicketTags(edit_card=True),
            ),
        )
        if self.config.staff_is_forum and title:
            # The topic's name shows the status; a closed ticket's topic is closed.
            # (message_thread_id 0 is filled in with the ticket's topic when sent.)
            self.outbox.add(
                session,
                Intent(
                    chat_id=staff,
                    method=methods.EditForumTopic,
                    payload={"chat_id": staff, "message_thread_id": 0, "name": self._topic(ticket)},
                    purpose="topic",
                    subject=ticket.number,
                    rank=int(ticket.priority),
                ),
            )
            if ticket.status is Status.CLOSED:
                self.outbox.add(
                    session,
                    Intent(
                        chat_id=staff,
                        method=methods.CloseForumTopic,
                        payload={"chat_id": staff, "message_thread_id": 0},
                        purpose="topic",
                        subject=ticket.number,
                        rank=int(ticket.priority),
                    ),
                )

    def add_media(
        self,
        session: AsyncSession,
        ticket: Ticket,
        media: Sequence[dict[str, Any]],
        card: Delivery,
        purpose: str,
    ) -> None:
        """Screenshots of a request, as replies to its ``card``."""
        staff = self.config.staff_chat_id
        refs = Refs(party=ticket.customer_id, reply_to_delivery=card.id)
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
                Intent(
                    chat_id=staff,
                    method=single[item["type"]],
                    payload=payload,
                    purpose=purpose,
                    subject=ticket.number,
                    rank=int(ticket.priority),
                    refs=refs,
                ),
            )
            return
        self.outbox.add(
            session,
            Intent(
                chat_id=staff,
                method=methods.SendMediaGroup,
                payload={"chat_id": staff, "media": list(media)},
                purpose=purpose,
                subject=ticket.number,
                rank=int(ticket.priority),
                refs=refs,
            ),
        )

    def post_to_ticket(
        self, session: AsyncSession, ticket: Ticket, text: str, *, purpose: str = "staff_note"
    ) -> None:
        """A message for staff about a ticket: in its topic, or as a reply to its card.
        ``purpose`` "relay" for the customer's own words (a reply to it is an answer)."""
        staff = self.config.staff_chat_id
        self.outbox.add(
            session,
            Intent(
                chat_id=staff,
                method=methods.SendMessage,
                payload={"chat_id": staff, "text": text},
                purpose=purpose,
                subject=ticket.number,
                rank=int(ticket.priority),
                refs=Refs(party=ticket.customer_id),
                tags=TicketTags(reply_to_card=True),
            ),
        )
