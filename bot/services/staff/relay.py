"""The conversation between staff and a ticket's customer (SPEC §5): what a staff message in the
group is (an answer, a note, the answer to the Resolve prompt, or staff talking among
themselves), and what becomes of it: copied to the customer, kept as a note, one album kept
whole, an edit carried to the customer's copy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from aiogram import methods
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, MessageLink, Ticket, TicketEvent, User, is_mail_customer
from bot.db.repositories import (
    DeliveryRepo,
    DialogRepo,
    EventRepo,
    LinkRepo,
    TicketRepo,
)
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs
from bot.delivery.outbox import ALBUM_GRACE, Outbox, stream_of
from bot.delivery.outcomes import Failure, FailureKind
from bot.domain.tickets import Action, Status, is_open
from bot.services.albums import merge_album
from bot.services.assignment import closed_refusal
from bot.services.cards import Cards, display_name
from bot.services.copies import edit_copy
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.notices_staff import (
    AlbumAlreadySent,
    EditNotCarried,
    KeptInside,
    Undelivered,
    UndeliveredReason,
)
from bot.services.outgoing import TicketTags, copy_answer
from bot.services.rendering import Renderer
from bot.services.staff.actions import StaffActions
from bot.services.staff.lookup import StaffLookup

log = logging.getLogger(__name__)

NOTE_MARK = "!"
_NOTE_COMMAND = re.compile(r"/note(?:@\w+)?(?:\s|$)", re.IGNORECASE)

# What a staff-side message of a ticket is (``MessageLink.direction``), and so what a reply to
# it means (SPEC §5): only what the customer can be the addressee of carries an answer. That is
# the card (and its copy that /ticket shows), what the customer sent (the screenshots of the
# request, relayed messages), and the bot's prompts that ask staff for the answer.
CUSTOMER_SIDE = frozenset({"card", "card_copy", "card_media", "relay"})
PROMPTS = frozenset({"resolve_prompt"})
ANSWER = "answer"  # a staff message copied to the customer: the link names both
NOTE = "note"  # a staff message kept inside
HINT = "hint"  # the bot's word to a staff member about their own message
# Anything else the bot posts about a ticket ("staff_note": the history, SLA alerts, disputes,
# low ratings, "not delivered" warnings) is staff-side too: a reply to it stays inside.

# The note-or-answer decision of a staff album, kept while its parts arrive (dialog_states).
ALBUM_KEY = "staff_album:"
ALBUM_MEMORY = timedelta(days=1)


# A ticket's shortcut in a burst digest (bot/views/desk.py): ``/ticket_12``.
DIGEST_NUMBER = re.compile(r"/ticket_(\d{1,18})\b")


def note_text(text: str) -> str | None:
    """The note of a staff message marked as one (``!`` or ``/note``); None for any other."""
    if text.startswith(NOTE_MARK):
        return text[len(NOTE_MARK) :].strip()
    match = _NOTE_COMMAND.match(text)
    return text[match.end() :].strip() if match else None


def _unsent(delivery: Delivery) -> bool:
    """Still in the outbox, and no sender has taken it."""
    return delivery.status == "pending" and delivery.claimed_until is None and not delivery.attempts


@dataclass(frozen=True, slots=True)
class StaffPost:
    """What the conversation needs to know of a staff message."""

    message_id: int
    text: str  # its text or caption
    thread_id: int | None = None  # its forum topic
    reply_to: int | None = None  # the message it replies to (not the root of its topic)
    reply_to_bot: bool = False  # ... which the bot posted
    media_group_id: str | None = None
    media: dict[str, Any] | None = None  # its part of an album, as sendMediaGroup takes it
    # What it replies to, as Telegram shows it (a post of the bot that no ticket owns, such as
    # a burst digest): its text, and the part the writer quoted.
    replied_text: str | None = None
    quoted: str | None = None
    # What it says (its HTML, its files' ids): what an answer to a customer who writes by
    # e-mail is made of (bot/delivery/mail.py).
    content: dict[str, Any] | None = None


class Route(StrEnum):
    ANSWER = "answer"  # goes to the customer
    RESOLVE = "resolve"  # the answer to the Resolve prompt
    NOTE = "note"  # marked as a note
    ASIDE = "aside"  # a reply to a staff-side message: staff talking among themselves


@dataclass(frozen=True, slots=True)
class Routed:
    ticket: Ticket
    route: Route
    note: str = ""  # what is kept (NOTE, ASIDE)
    customer_message: int | None = None  # the customer's message it answers (ANSWER)
    hint: bool = False  # ASIDE that may have been meant for the customer


@dataclass(frozen=True, slots=True)
class Received:
    resolve: bool = False  # the answer to the Resolve prompt: the resolution takes it on
    mark: bool = False  # kept inside: a quiet mark on the message says so


class StaffRelay:
    def __init__(
        self,
        *,
        clock: Clock,
        outbox: Outbox,
        config: DeskConfig,
        cards: Cards,
        lookup: StaffLookup,
        actions: StaffActions,
        render: Renderer,
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.cards = cards
        self.lookup = lookup
        self.actions = actions  # the first answer to a new ticket takes it, as Take does
        self.render = render

    # -- what a staff message is ---------------------------------------------------------------

    async def route(self, session: AsyncSession, post: StaffPost) -> Routed | None:
        """The ticket a staff message is about and what it is there (SPEC §5), or None:
        staff talking among themselves about no ticket."""
        ticket: Ticket | None = None
        in_topic = False
        if self.config.staff_is_forum and post.thread_id:
            ticket = await self.lookup.ticket_of_thread(session, post.thread_id)
            in_topic = ticket is not None
        link = (
            await LinkRepo(session).of_staff_message(self.config.staff_chat_id, post.reply_to)
            if post.reply_to is not None
            else None
        )
        if link is not None:
            if ticket is None:
                ticket = await TicketRepo(session).get(link.ticket_number)
            elif link.ticket_number != ticket.number:
                link = None  # a message of another ticket says nothing about this one
        if ticket is None and link is None and post.reply_to_bot:
            ticket = await self._ticket_of_digest_line(session, post)
            if ticket is not None:
                note = note_text(post.text)
                if note is not None:
                    return Routed(ticket, Route.NOTE, note=note)
                return Routed(ticket, Route.ANSWER)
        if ticket is None:
            return None
        note = note_text(post.text)
        if note is not None:
            return Routed(ticket, Route.NOTE, note=note)
        if link is None:
            if post.reply_to is not None and post.reply_to_bot:
                # In the ticket's topic, a reply to a post of the bot that no ticket owns.
                return Routed(ticket, Route.ASIDE, note=post.text, hint=True)
            return Routed(ticket, Route.ANSWER)  # written in the ticket's topic
        if link.direction in PROMPTS:
            return Routed(ticket, Route.RESOLVE)
        if link.direction in CUSTOMER_SIDE or (in_topic and link.direction == ANSWER):
            # In a topic everything staff write goes to the customer: a reply to an answer
            # too (it reaches the customer as a reply to their copy).
            return Routed(ticket, Route.ANSWER, customer_message=link.customer_message_id)
        # A reply to a note is staff talking; to anything else staff-side, perhaps meant
        # for the customer: the writer is told where answers go.
        return Routed(ticket, Route.ASIDE, note=post.text, hint=link.direction not in (NOTE, HINT))

    async def _ticket_of_digest_line(self, session: AsyncSession, post: StaffPost) -> Ticket | None:
        """A reply to a burst digest is for the ticket of the line it quotes, or of the only
        ticket its message names. Telegram puts the replied text and the quote in the update,
        so a writer can only point at a line the bot wrote."""
        for text in (post.quoted, post.replied_text):
            numbers = set(DIGEST_NUMBER.findall(text or ""))
            if len(numbers) == 1:
                return await TicketRepo(session).get(int(numbers.pop()))
            if numbers and note_text(post.text) is None:
                # Several tickets and no line quoted: whose it is is unclear; the writer is
                # told how to say it rather than left with silence.
                raise Refusal(
                    _(
                        "This digest names several requests: reply quoting the line of the "
                        "one you answer, or write in its topic (tap its /ticket_N)."
                    )
                )
        return None

    async def receive(
        self, session: AsyncSession, actor: User, post: StaffPost, routed: Routed, locale: str
    ) -> Received:
        """Keep a staff message as a note or send it to the customer. An album is one unit:
        note or answer as a whole, whichever of its parts carries the caption. A word to the
        writer about their message is in ``locale``, theirs."""
        if post.media_group_id is not None:
            return await self._receive_part(
                session, actor, post, routed, post.media_group_id, locale
            )
        ticket = routed.ticket
        if routed.route is Route.RESOLVE:
            return Received(resolve=True)
        if routed.route is Route.ANSWER:
            await self.answer(
                session,
                ticket,
                actor,
                post.message_id,
                routed.customer_message,
                content=post.content,
            )
            return Received()
        self.note(session, ticket, actor, routed.note, message_ids=[post.message_id])
        await self.remember_staff_link(session, ticket, post.message_id, NOTE)
        if routed.hint:
            self._hint(session, ticket, post.message_id, self._kept_inside(), locale)
        return Received(mark=True)

    async def _receive_part(
        self,
        session: AsyncSession,
        actor: User,
        post: StaffPost,
        routed: Routed,
        media_group_id: str,
        locale: str,
    ) -> Received:
        """A part of a staff album. The first part to arrive decides for the album; a part
        that arrives later with a note's caption (Telegram puts the caption on one part, not
        always the first) takes back what the album did while it is still held back."""
        # The parts of one album are taken one after the other (PostgreSQL: the row lock).
        ticket = await TicketRepo(session).get(routed.ticket.number, for_update=True)
        assert ticket is not None
        states = DialogRepo(session)
        key = ALBUM_KEY + media_group_id
        row = await states.get(key)
        album: dict[str, Any] = dict(row.data) if row is not None else {}
        parts: list[int] = [int(part) for part in album.get("parts") or []]
        kind = album.get("kind")
        received = Received()
        if kind is None:
            await states.forget_before(ALBUM_KEY, self.clock.now() - ALBUM_MEMORY)
            if routed.route is Route.RESOLVE:
                kind, received = "resolve", Received(resolve=True)
            elif routed.route is Route.ANSWER:
                kind = "answer"
                album["undo"] = await self._answer_first_part(session, ticket, actor, post, routed)
            else:
                kind, received = "note", Received(mark=True)
                await self._note_part(session, ticket, actor, [post.message_id], routed, album)
                if routed.hint:
                    self._hint(session, ticket, post.message_id, self._kept_inside(), locale)
        elif kind == "note":
            await self._note_part(session, ticket, actor, [post.message_id], routed, album)
            received = Received(mark=routed.route is Route.NOTE)
        elif routed.route is Route.NOTE:
            received = Received(mark=True)
            if kind == "answer" and await self._take_back(
                session, ticket, actor, media_group_id, parts, album
            ):
                kind = "note"
                ids = [*parts, post.message_id]
                await self._note_part(session, ticket, actor, ids, routed, album)
            else:
                # Too late: the album has gone. This part at least stays inside.
                self.note(session, ticket, actor, routed.note, message_ids=[post.message_id])
                await self.remember_staff_link(session, ticket, post.message_id, NOTE)
                self._hint(session, ticket, post.message_id, AlbumAlreadySent(), locale)
        else:
            media = (media_group_id, post.media) if post.media is not None else None
            await self.answer(
                session, ticket, actor, post.message_id, routed.customer_message, media
            )
        album.update(kind=kind, parts=[*parts, post.message_id], ticket=ticket.number)
        await states.put(key, state=None, data=album, now=self.clock.now())
        return received

    async def _answer_first_part(
        self, session: AsyncSession, ticket: Ticket, actor: User, post: StaffPost, routed: Routed
    ) -> dict[str, Any]:
        """The first part of an album answer does what an answer does (takes a new ticket,
        meets the SLA), keeping the customer's notice back with the album; returns what a
        late note caption would have to take back."""
        first_response = ticket.first_response_at is None
        assert post.media_group_id is not None
        media = (post.media_group_id, post.media) if post.media is not None else None
        notice = await self.answer(
            session, ticket, actor, post.message_id, routed.customer_message, media, hold=True
        )
        return {
            "first_response": first_response,
            "notice": notice.id if notice is not None else None,  # only if it was taken
        }

    async def _take_back(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        media_group_id: str,
        parts: list[int],
        album: dict[str, Any],
    ) -> bool:
        """Undo an album answer whose note caption came late, if none of it has left: the
        album is dropped from the outbox with the notice held back with it, and the ticket is
        as it was before. False when it is too late for that."""
        deliveries = DeliveryRepo(session)
        stream = stream_of(ticket.customer_id, ticket.number)
        pending = await deliveries.pending_album(stream, media_group_id)
        if pending is None:
            return False
        held = set(TicketTags.of(pending).staff_message_ids)
        if not set(parts) <= held:
            return False  # some parts went on their own
        await session.delete(pending)
        undo: dict[str, Any] = dict(album.pop("undo", None) or {})
        now = self.clock.now()
        # The history is append-only: what the album did stays in it, followed by what takes
        # it back (the answer withdrawn, then the take given back).
        EventRepo(session).record(
            ticket.number,
            at=now,
            type="answer_withdrawn",
            actor_id=actor.id,
            actor_role="staff",
            details={"message_ids": parts},
        )
        if undo.get("first_response"):
            ticket.first_response_at = None
        notice = await deliveries.get(undo["notice"]) if undo.get("notice") else None
        if (
            notice is not None
            and _unsent(notice)  # the customer has not been told it was taken
            and ticket.status is Status.IN_PROGRESS
            and ticket.assignee_id == actor.id  # and nobody changed it since
        ):
            await session.delete(notice)
            EventRepo(session).record(
                ticket.number,
                at=now,
                type="assignee",
                actor_id=actor.id,
                actor_role="staff",
                old=display_name(actor),
                new=None,
                details={"assignee_id": None},
            )
            ticket.assignee_id = None
            self.actions.move(session, ticket, Action.TAKE_BACK, actor, now)
        await self.cards.refresh(session, ticket)
        return True

    async def _note_part(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        message_ids: list[int],
        routed: Routed,
        album: dict[str, Any],
    ) -> None:
        """Parts of a note album: one note in the history, every part linked as a note."""
        events = EventRepo(session)
        event = await events.get(int(album["note_event"])) if album.get("note_event") else None
        if event is None:
            event = self.note(session, ticket, actor, "", message_ids=[])
            await session.flush()
            album["note_event"] = event.id
        details = dict(event.details or {})
        details["message_ids"] = [*(details.get("message_ids") or []), *message_ids]
        if routed.note and not details.get("text"):
            details["text"] = routed.note[:4000]
        event.details = details
        for message_id in message_ids:
            await self.remember_staff_link(session, ticket, message_id, NOTE)

    def _kept_inside(self) -> KeptInside:
        return KeptInside(forum=self.config.staff_is_forum)

    def _hint(
        self, session: AsyncSession, ticket: Ticket, reply_to: int, notice: object, locale: str
    ) -> None:
        """A word to a staff member about their message, as a reply to it (in the ticket's
        topic in a forum). Linked as a hint: a reply to it stays inside."""
        text = self.render(notice, locale).text
        staff_chat = self.config.staff_chat_id
        self.outbox.add(
            session,
            Intent(
                chat_id=staff_chat,
                method=methods.SendMessage,
                payload={
                    "chat_id": staff_chat,
                    "text": text,
                    "reply_parameters": {
                        "message_id": reply_to,
                        "allow_sending_without_reply": True,
                    },
                },
                purpose=HINT,
                subject=ticket.number,
                rank=int(ticket.priority),
                refs=Refs(party=ticket.customer_id),
            ),
        )

    # -- answers and notes ---------------------------------------------------------------------

    async def answer(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        staff_message_id: int,
        reply_to_customer_message: int | None,
        album: tuple[str, dict[str, Any]] | None = None,
        *,
        hold: bool = False,
        content: dict[str, Any] | None = None,
    ) -> Delivery | None:
        """Copy a staff message to the customer (the first answer takes the ticket). Returns
        the notice that the ticket was taken, if it was; ``hold`` keeps it back with the
        album (the first part of an album that its late caption may yet make a note)."""
        if not is_open(ticket.status):
            raise closed_refusal(ticket)
        now = self.clock.now()
        first = ticket.first_response_at is None
        if first:
            ticket.first_response_at = now  # before the card is drawn: the SLA is met
        notice = None
        if ticket.status is Status.NEW and is_mail_customer(ticket.customer_id):
            # By e-mail the answer itself says who answered: no separate mail before it.
            await self.actions.assignment.assign(session, ticket, actor, actor, tell=False)
        elif ticket.status is Status.NEW:
            notice = await self.actions.assign_to(
                session, ticket, actor, actor, hold=ALBUM_GRACE if hold else None
            )
        elif first:
            await self.cards.refresh(session, ticket)
        details: dict[str, Any] = {"message_id": staff_message_id}
        if album is not None:
            details["media_group_id"] = album[0]
        EventRepo(session).record(
            ticket.number,
            at=now,
            type="staff_message",
            actor_id=actor.id,
            actor_role="staff",
            details=details,
        )
        if album is not None:
            await self._answer_album(session, ticket, staff_message_id, *album)
        else:
            copy_answer(
                self.outbox,
                session,
                ticket,
                from_chat_id=self.config.staff_chat_id,
                message_id=staff_message_id,
                reply_to=reply_to_customer_message,
                purpose=ANSWER,
                content=content if is_mail_customer(ticket.customer_id) else None,
            )
        ticket.updated_at = now
        return notice

    async def _answer_album(
        self,
        session: AsyncSession,
        ticket: Ticket,
        staff_message_id: int,
        media_group_id: str,
        media: dict[str, Any],
    ) -> None:
        """Album parts arrive one by one; they join one delivery, so the customer gets the
        album together (the same way as customer albums reach staff)."""
        stream = stream_of(ticket.customer_id, ticket.number)
        delivery = await DeliveryRepo(session).pending_album(stream, media_group_id)
        if delivery is None:
            delivery = self.outbox.add(
                session,
                Intent(
                    chat_id=ticket.customer_id,
                    method=methods.SendMediaGroup,
                    payload={"chat_id": ticket.customer_id, "media": []},
                    purpose=ANSWER,
                    subject=ticket.number,
                    rank=RANK_CUSTOMER_WAITING,
                    delay=ALBUM_GRACE,
                    refs=Refs(party=ticket.customer_id, grows=True),
                    tags=TicketTags(
                        staff_message_ids=[],
                        media_group_id=media_group_id,
                    ),
                ),
            )
        payload, tags = dict(delivery.payload), TicketTags.of(delivery)
        tags.staff_message_ids = merge_album(
            payload, tags.staff_message_ids, [staff_message_id], [media]
        )
        Outbox.revise(delivery, payload, tags)
        await session.flush()

    def note(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        text: str,
        *,
        message_ids: Sequence[int] = (),
    ) -> TicketEvent:
        details: dict[str, Any] = {"text": text[:4000]}
        if message_ids:
            details["message_ids"] = list(message_ids)
        return EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="note",
            actor_id=actor.id,
            actor_role="staff",
            details=details,
        )

    async def carry_edit(self, session: AsyncSession, message: Message, locale: str) -> None:
        """A staff answer was edited: edit the customer's copy the same way. Nothing else
        is carried: an edit never makes a note an answer, and an answer edited into a note
        is refused (the customer's copy is not changed behind anyone's back; the writer is
        told, in ``locale``)."""
        link = await LinkRepo(session).of_staff_message(
            self.config.staff_chat_id, message.message_id
        )
        if link is None or link.direction != ANSWER or link.customer_message_id is None:
            return
        ticket = await TicketRepo(session).get(link.ticket_number)
        if ticket is None:
            return
        if note_text(message.text or message.caption or "") is not None:
            self._hint(session, ticket, message.message_id, EditNotCarried(), locale)
            return
        edit_copy(
            self.outbox, session, ticket, ticket.customer_id, link.customer_message_id, message
        )

    async def undelivered(
        self, session: AsyncSession, delivery: Delivery, failure: Failure
    ) -> None:
        """A message to the customer could not be delivered: say so in the ticket."""
        if delivery.ticket_number is None:
            return
        error = failure.error
        if failure.kind is FailureKind.FORBIDDEN:
            # Telegram says which only in words: 403 "bot was blocked by the user" or
            # "user is deactivated".
            deleted = "deactivated" in error
            reason = UndeliveredReason.DELETED if deleted else UndeliveredReason.BLOCKED
        elif failure.kind is FailureKind.NOT_FOUND or "chat not found" in error:
            reason = UndeliveredReason.DELETED
        else:
            reason = UndeliveredReason.REFUSED
        ticket = await TicketRepo(session).get(delivery.ticket_number)
        if ticket is None:
            return
        notice = Undelivered(ticket.number, reason, error[:200])
        # Staff share one group: in the desk's language.
        text = self.render(notice, self.config.default_locale).text
        self.cards.post_to_ticket(session, ticket, text)

    async def remember_staff_link(
        self, session: AsyncSession, ticket: Ticket, staff_message_id: int, kind: str
    ) -> None:
        LinkRepo(session).add(
            MessageLink(
                ticket_number=ticket.number,
                direction=kind,
                customer_chat_id=ticket.customer_id,
                customer_message_id=None,
                staff_chat_id=self.config.staff_chat_id,
                staff_message_id=staff_message_id,
                created_at=self.clock.now(),
            )
        )
