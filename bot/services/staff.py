"""Staff-side use cases (SPEC §5): act on a ticket from its card, relay answers and notes.

Every change goes through the ticket rules, is written to the history with who did it, and
refreshes the card; the customer is told what concerns them. Refusals come back as a
:class:`Refusal` with a sentence for the person who pressed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from aiogram import html, methods
from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, MessageLink, Ticket, TicketEvent, User
from bot.db.repositories import (
    DeliveryRepo,
    DeskSettings,
    DialogRepo,
    EventRepo,
    LinkRepo,
    StaffDirectory,
    StaffQueries,
    TicketRepo,
    UserRepo,
)
from bot.domain.tickets import (
    Action,
    Priority,
    Status,
    can_reassign,
    is_open,
)
from bot.keyboards import staff as kb
from bot.services.albums import merge_album
from bot.services.cards import Cards, display_name
from bot.services.copies import edit_copy
from bot.services.delivery import ALBUM_GRACE, RANK_CUSTOMER_WAITING, Outbox, stream_of, to_customer
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal, apply_or_refuse, customer_locale
from bot.views import resolution as resolution_views
from bot.views import staff as views
from bot.views.labels import status_label

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
class Done:
    ticket: Ticket
    message: str


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


class StaffService:
    def __init__(
        self, *, clock: Clock, outbox: Outbox, i18n: I18n, config: DeskConfig, cards: Cards
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.i18n = i18n
        self.config = config
        self.cards = cards
        # Set by the app: what follows any close (the rating request, SPEC §3).
        self.after_close: Callable[[AsyncSession, Ticket], Awaitable[None]] | None = None

    # -- finding the ticket --------------------------------------------------------------------

    async def ticket(self, session: AsyncSession, number: int, *, lock: bool = False) -> Ticket:
        ticket = await TicketRepo(session).get(number, for_update=lock)
        if ticket is None:
            raise Refusal(_("There is no request #{number}.").format(number=number))
        return ticket

    async def ticket_of_staff_message(
        self, session: AsyncSession, message_id: int
    ) -> Ticket | None:
        number = await LinkRepo(session).ticket_of_staff_message(
            self.config.staff_chat_id, message_id
        )
        return await TicketRepo(session).get(number) if number is not None else None

    async def ticket_of_thread(self, session: AsyncSession, thread_id: int) -> Ticket | None:
        number = await LinkRepo(session).ticket_of_thread(self.config.staff_chat_id, thread_id)
        return await TicketRepo(session).get(number) if number is not None else None

    # -- card buttons --------------------------------------------------------------------------

    async def take(self, session: AsyncSession, number: int, actor: User) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        if ticket.assignee_id == actor.id and ticket.status is not Status.NEW:
            raise Refusal(_("#{number} is already yours.").format(number=number))
        if ticket.assignee_id is not None and ticket.assignee_id != actor.id:
            holder = await UserRepo(session).get(ticket.assignee_id)
            raise Refusal(
                _("#{number} is already taken by {name}.").format(
                    number=number, name=display_name(holder, ticket.assignee_id)
                )
            )
        await self._assign(session, ticket, actor, actor)
        return Done(ticket, _("#{number} is yours now.").format(number=number))

    async def assign(
        self, session: AsyncSession, number: int, actor: User, assignee_id: int
    ) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        assignee = await UserRepo(session).get(assignee_id)
        if assignee is None:
            raise Refusal(_("That person is not known to the desk."))
        if ticket.assignee_id == assignee_id:
            raise Refusal(
                _("#{number} is already assigned to {name}.").format(
                    number=number, name=display_name(assignee)
                )
            )
        await self._assign(session, ticket, actor, assignee)
        return Done(
            ticket,
            _("#{number} is assigned to {name}.").format(
                number=number, name=display_name(assignee)
            ),
        )

    async def _assign(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: User,
        assignee: User,
        *,
        hold: timedelta | None = None,
    ) -> Delivery:
        """``hold`` keeps the customer's notice back a moment (it can still be taken back)."""
        if not can_reassign(ticket.status):
            raise Refusal(self._closed(ticket))
        now = self.clock.now()
        events = EventRepo(session)
        old = await UserRepo(session).get(ticket.assignee_id) if ticket.assignee_id else None
        events.record(
            ticket.number,
            at=now,
            type="assignee",
            actor_id=actor.id,
            actor_role="staff",
            old=display_name(old) if old else None,
            new=display_name(assignee),
            details={"assignee_id": assignee.id},
        )
        ticket.assignee_id = assignee.id
        if ticket.status is Status.NEW:
            self._move(session, ticket, Action.TAKE, actor, now)
        ticket.updated_at = now
        await self.cards.refresh(session, ticket)
        name = display_name(assignee)
        notice = await self._tell_customer(
            session, ticket, lambda: views.taken_notice(ticket.number, name)
        )
        if hold is not None:
            notice.not_before += hold
        return notice

    async def set_priority(
        self, session: AsyncSession, number: int, actor: User, priority: Priority
    ) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        if not can_reassign(ticket.status):
            raise Refusal(self._closed(ticket))
        if ticket.priority == priority:
            raise Refusal(_("The priority is already {priority}.").format(priority=priority.name))
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="priority",
            actor_id=actor.id,
            actor_role="staff",
            old=str(int(ticket.priority)),
            new=str(int(priority)),
        )
        ticket.priority = priority
        ticket.updated_at = self.clock.now()
        await self.cards.refresh(session, ticket)
        return Done(
            ticket,
            _("Priority of #{number}: {priority}.").format(number=number, priority=priority.name),
        )

    async def set_line(self, session: AsyncSession, number: int, actor: User, line: int) -> Done:
        if line not in (1, 2, 3):
            raise Refusal(_("The support line is 1, 2 or 3."))
        ticket = await self.ticket(session, number, lock=True)
        if not can_reassign(ticket.status):
            raise Refusal(self._closed(ticket))
        if ticket.line == line:
            raise Refusal(_("The line is already {line}.").format(line=line))
        EventRepo(session).record(
            ticket.number,
            at=self.clock.now(),
            type="line",
            actor_id=actor.id,
            actor_role="staff",
            old=str(ticket.line),
            new=str(line),
        )
        ticket.line = line
        ticket.updated_at = self.clock.now()
        await self.cards.refresh(session, ticket)
        return Done(ticket, _("#{number} is on line {line}.").format(number=number, line=line))

    async def ask_info(self, session: AsyncSession, number: int, actor: User) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        if ticket.status is Status.NEW:
            await self._assign(session, ticket, actor, actor)
        self._move(session, ticket, Action.ASK_INFO, actor, self.clock.now())
        await self.cards.refresh(session, ticket)
        await self._tell_customer(session, ticket, lambda: views.ask_info_notice(ticket.number))
        if self.config.staff_is_forum:
            hint = _("#{number} waits for the customer. Write your question in this topic.")
        else:
            hint = _(
                "#{number} waits for the customer. Write your question as a reply to the card."
            )
        return Done(ticket, hint.format(number=number))

    async def resolve_prompt(self, session: AsyncSession, number: int, actor: User) -> Done:
        """Resolve asks for the answer in the ticket's thread (or takes the last one)."""
        ticket = await self.ticket(session, number)
        if ticket.status not in (Status.NEW, Status.IN_PROGRESS, Status.WAITING_CUSTOMER):
            raise Refusal(
                _("#{number} is {status}: that is not possible now.").format(
                    number=number, status=status_label(ticket.status).lower()
                )
            )
        has_last = await EventRepo(session).last_staff_message(ticket.number) is not None
        markup = kb.resolve_prompt(number) if has_last else None
        staff_chat = self.config.staff_chat_id
        payload: dict[str, Any] = {
            "chat_id": staff_chat,
            "text": resolution_views.resolve_prompt(number, has_last),
        }
        if markup is not None:
            payload["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.SendMessage,
            payload=payload,
            purpose="resolve_prompt",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"reply_to_card": True, "customer_chat_id": ticket.customer_id},
        )
        return Done(ticket, _("Write the answer as a reply to my message."))

    async def close(self, session: AsyncSession, number: int, actor: User) -> Done:
        ticket = await self.ticket(session, number, lock=True)
        now = self.clock.now()
        self._move(session, ticket, Action.CLOSE_BY_STAFF, actor, now)
        await self.cards.refresh(session, ticket)
        await self._tell_customer(session, ticket, lambda: views.closed_notice(ticket.number))
        if self.after_close is not None:
            await self.after_close(session, ticket)
        return Done(ticket, _("#{number} is closed.").format(number=number))

    def _move(
        self, session: AsyncSession, ticket: Ticket, action: Action, actor: User, now: datetime
    ) -> None:
        apply_or_refuse(
            session,
            ticket,
            action,
            actor_id=actor.id,
            role="staff",
            now=now,
            hours=self.config.hours,
            refusal=_("#{number} is {status}: that is not possible now."),
        )

    def _closed(self, ticket: Ticket) -> str:
        return _("#{number} is closed: nothing can change it.").format(number=ticket.number)

    # -- conversation --------------------------------------------------------------------------

    async def _tell_customer(
        self, session: AsyncSession, ticket: Ticket, render: Callable[[], str]
    ) -> Delivery:
        """A notice to the customer, in the customer's language."""
        with self.i18n.use_locale(await customer_locale(session, ticket)):
            text = render()
        return to_customer(self.outbox, session, ticket, text)

    # -- what a staff message is ---------------------------------------------------------------

    async def route(self, session: AsyncSession, post: StaffPost) -> Routed | None:
        """The ticket a staff message is about and what it is there (SPEC §5), or None:
        staff talking among themselves about no ticket."""
        ticket: Ticket | None = None
        in_topic = False
        if self.config.staff_is_forum and post.thread_id:
            ticket = await self.ticket_of_thread(session, post.thread_id)
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

    async def receive(
        self, session: AsyncSession, actor: User, post: StaffPost, routed: Routed
    ) -> Received:
        """Keep a staff message as a note or send it to the customer. An album is one unit:
        note or answer as a whole, whichever of its parts carries the caption."""
        if post.media_group_id is not None:
            return await self._receive_part(session, actor, post, routed, post.media_group_id)
        ticket = routed.ticket
        if routed.route is Route.RESOLVE:
            return Received(resolve=True)
        if routed.route is Route.ANSWER:
            await self.answer(session, ticket, actor, post.message_id, routed.customer_message)
            return Received()
        self.note(session, ticket, actor, routed.note, message_ids=[post.message_id])
        await self.remember_staff_link(session, ticket, post.message_id, NOTE)
        if routed.hint:
            self._hint(session, ticket, post.message_id, self._kept_inside())
        return Received(mark=True)

    async def _receive_part(
        self,
        session: AsyncSession,
        actor: User,
        post: StaffPost,
        routed: Routed,
        media_group_id: str,
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
                    self._hint(session, ticket, post.message_id, self._kept_inside())
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
                self._hint(session, ticket, post.message_id, views.album_already_sent())
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
        held = {int(i) for i in (pending.context or {}).get("staff_message_ids") or []}
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
            self._move(session, ticket, Action.TAKE_BACK, actor, now)
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

    def _kept_inside(self) -> str:
        return views.kept_inside(self.config.staff_is_forum)

    def _hint(self, session: AsyncSession, ticket: Ticket, reply_to: int, text: str) -> None:
        """A word to a staff member about their message, as a reply to it (in the ticket's
        topic in a forum). Linked as a hint: a reply to it stays inside."""
        staff_chat = self.config.staff_chat_id
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.SendMessage,
            payload={
                "chat_id": staff_chat,
                "text": text,
                "reply_parameters": {"message_id": reply_to, "allow_sending_without_reply": True},
            },
            purpose=HINT,
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"customer_chat_id": ticket.customer_id},
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
    ) -> Delivery | None:
        """Copy a staff message to the customer (the first answer takes the ticket). Returns
        the notice that the ticket was taken, if it was; ``hold`` keeps it back with the
        album (the first part of an album that its late caption may yet make a note)."""
        if not is_open(ticket.status):
            raise Refusal(self._closed(ticket))
        now = self.clock.now()
        first = ticket.first_response_at is None
        if first:
            ticket.first_response_at = now  # before the card is drawn: the SLA is met
        notice = None
        if ticket.status is Status.NEW:
            notice = await self._assign(
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
            payload: dict[str, object] = {
                "chat_id": ticket.customer_id,
                "from_chat_id": self.config.staff_chat_id,
                "message_id": staff_message_id,
            }
            if reply_to_customer_message is not None:
                payload["reply_parameters"] = {
                    "message_id": reply_to_customer_message,
                    "allow_sending_without_reply": True,
                }
            self.outbox.add(
                session,
                chat_id=ticket.customer_id,
                method=methods.CopyMessage,
                payload=dict(payload),
                purpose=ANSWER,
                ticket_number=ticket.number,
                rank=RANK_CUSTOMER_WAITING,
                context={
                    "customer_chat_id": ticket.customer_id,
                    "staff_message_ids": [staff_message_id],
                },
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
                chat_id=ticket.customer_id,
                method=methods.SendMediaGroup,
                payload={"chat_id": ticket.customer_id, "media": []},
                purpose=ANSWER,
                ticket_number=ticket.number,
                rank=RANK_CUSTOMER_WAITING,
                context={
                    "customer_chat_id": ticket.customer_id,
                    "staff_message_ids": [],
                    "media_group_id": media_group_id,
                    "from_chat_id": self.config.staff_chat_id,
                },
                delay=ALBUM_GRACE,
            )
        payload, context = dict(delivery.payload), dict(delivery.context or {})
        merge_album(payload, context, [staff_message_id], [media], key="staff_message_ids")
        delivery.payload, delivery.context = payload, context
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

    async def show_ticket(
        self, session: AsyncSession, number: int, locale: str, thread_id: int | None
    ) -> None:
        """/ticket N: the card (with its buttons) and the history, where it was asked."""
        ticket = await self.ticket(session, number)
        text, markup = await self.cards.render(session, ticket)
        staff_chat = self.config.staff_chat_id
        extra = {"message_thread_id": thread_id} if thread_id else {}
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.SendMessage,
            payload={"chat_id": staff_chat, "text": text, "reply_markup": markup, **extra},
            purpose="card_copy",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"customer_chat_id": ticket.customer_id},
        )
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.SendMessage,
            payload={
                "chat_id": staff_chat,
                "text": await self.history(session, number, locale),
                **extra,
            },
            purpose="staff_note",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
            context={"customer_chat_id": ticket.customer_id},
        )

    async def show_keyboard(
        self, session: AsyncSession, number: int, message_id: int, markup: InlineKeyboardMarkup
    ) -> None:
        ticket = await self.ticket(session, number)
        staff_chat = self.config.staff_chat_id
        self.outbox.add(
            session,
            chat_id=staff_chat,
            method=methods.EditMessageReplyMarkup,
            payload={
                "chat_id": staff_chat,
                "message_id": message_id,
                "reply_markup": markup.model_dump(mode="json", exclude_none=True),
            },
            purpose="menu",
            ticket_number=ticket.number,
            rank=int(ticket.priority),
        )

    async def known_staff(self, session: AsyncSession) -> Sequence[User]:
        return await StaffDirectory(session).known()

    async def post_to_ticket(self, session: AsyncSession, number: int, text: str) -> None:
        self.cards.post_to_ticket(session, await self.ticket(session, number), text)

    async def carry_edit(self, session: AsyncSession, message: Message) -> None:
        """A staff answer was edited: edit the customer's copy the same way. Nothing else
        is carried: an edit never makes a note an answer, and an answer edited into a note
        is refused (the customer's copy is not changed behind anyone's back)."""
        link = await LinkRepo(session).of_staff_message(
            self.config.staff_chat_id, message.message_id
        )
        if link is None or link.direction != ANSWER or link.customer_message_id is None:
            return
        ticket = await TicketRepo(session).get(link.ticket_number)
        if ticket is None:
            return
        if note_text(message.text or message.caption or "") is not None:
            self._hint(session, ticket, message.message_id, views.edit_not_carried())
            return
        edit_copy(
            self.outbox, session, ticket, ticket.customer_id, link.customer_message_id, message
        )

    async def undelivered(self, session: AsyncSession, delivery: Delivery) -> None:
        """A message to the customer could not be delivered: say so in the ticket."""
        if delivery.ticket_number is None:
            return
        error = delivery.error or ""
        # Called from the sender, outside any update: set the i18n context ourselves.
        with self.i18n.context(), self.i18n.use_locale(self.config.default_locale):
            if "blocked" in error:
                reason = _("the customer has blocked the bot")
            elif "deactivated" in error or "chat not found" in error:
                reason = _("the customer's account is deleted")
            else:
                reason = _("Telegram refused it: {error}").format(error=html.quote(error[:200]))
            text = _(
                "⚠️ A message to the customer of #{number} was not delivered: {reason}."
            ).format(number=delivery.ticket_number, reason=reason)
        await self.post_to_ticket(session, delivery.ticket_number, text)

    async def follow_migration(self, session: AsyncSession, new_chat_id: int) -> None:
        """Telegram upgraded the staff group to a supergroup with a new id: follow it."""
        log.warning("the staff group moved: %s -> %s", self.config.staff_chat_id, new_chat_id)
        self.config.staff_chat_id = new_chat_id
        await DeskSettings(session).put("staff_chat_id", str(new_chat_id))

    # -- reading -------------------------------------------------------------------------------

    async def history(self, session: AsyncSession, number: int, locale: str) -> str:
        ticket = await self.ticket(session, number)
        events = await EventRepo(session).for_ticket(ticket.number)
        users = UserRepo(session)
        names: dict[int, str] = {}
        lines = []
        for event in events:
            if event.actor_id is None:
                actor = _("the desk")
            else:
                if event.actor_id not in names:
                    names[event.actor_id] = display_name(
                        await users.get(event.actor_id), event.actor_id
                    )
                actor = names[event.actor_id]
            lines.append(
                views.EventLine(
                    at=event.at,
                    actor=actor,
                    type=event.type,
                    old=event.old,
                    new=event.new,
                    text=(event.details or {}).get("text"),
                )
            )
        return views.history(ticket.number, lines, tz=self.config.tz, locale=locale)

    async def queue(
        self, session: AsyncSession, *, page: int, per_page: int, locale: str
    ) -> tuple[str, int]:
        queries = StaffQueries(session)
        total = await queries.count_open()
        pages = max(1, -(-total // per_page))
        page = min(max(page, 0), pages - 1)
        rows = await queries.open_queue(offset=page * per_page, limit=per_page)
        now = self.clock.now()
        lines = [
            views.QueueLine(
                number=ticket.number,
                priority=ticket.priority,
                status=ticket.status,
                topic=ticket.topic,
                assignee=display_name(assignee) if assignee else None,
                age=now - ticket.created_at,
                sla=self.cards.sla(ticket),
            )
            for ticket, assignee in rows
        ]
        return views.queue(lines, page=page, pages=pages, total=total, locale=locale), pages

    async def find(self, session: AsyncSession, query: str) -> str:
        rows = await StaffQueries(session).find(query.strip(), limit=20)
        return views.found(query, [(t.number, t.status, t.topic) for t in rows])

    async def staff_members(self, session: AsyncSession, ids: Sequence[int]) -> list[User]:
        users = UserRepo(session)
        found = [await users.get(user_id) for user_id in ids]
        return [user for user in found if user is not None]

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
