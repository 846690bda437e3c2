"""Customer-side use cases: register a request, add a follow-up to it, list requests."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import methods
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Attachment, Delivery, Ticket, User
from bot.db.repositories import DeliveryRepo, EventRepo, LinkRepo, TicketRepo
from bot.delivery.intents import Intent, Refs
from bot.delivery.outbox import ALBUM_GRACE, Outbox, stream_of
from bot.domain.tickets import Action, Kind, Status, is_open
from bot.services.accounts import AccountInfo, AccountLookup, account_info
from bot.services.albums import merge_album
from bot.services.cards import Cards, display_name
from bot.services.copies import edit_copy
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import apply
from bot.services.notices_customer import AfterHours, Registered
from bot.services.notices_desk import CoalescedEdit, CoalescedHeader
from bot.services.outgoing import TicketTags, to_customer
from bot.services.rendering import Renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttachmentIn:
    """A file the customer sent; kept as Telegram ``file_id`` (SPEC §3)."""

    kind: str  # photo / document / video / audio
    file_id: str
    file_unique_id: str
    file_name: str | None = None
    mime_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttachmentIn:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Draft:
    key: str
    kind: Kind
    topic: str
    description: str
    account_number: str
    attachments: Sequence[AttachmentIn] = ()


@dataclass(frozen=True, slots=True)
class RelayItem:
    """One customer message to relay; ``media`` is its InputMedia when it is part of an album
    (``media_group_id``)."""

    message_id: int
    media: dict[str, Any] | None = None
    attachment: AttachmentIn | None = None
    media_group_id: str | None = None
    # A plain text message as HTML (its entities kept) and its length as Telegram counts it:
    # what a coalesced relay joins.
    text_html: str | None = None
    text_length: int = 0
    sent_at: datetime | None = None
    # Sent beyond the customer's pace (CUSTOMER_MESSAGES_PER_MINUTE): join it with the
    # customer's other queued messages of the ticket instead of a message of its own.
    coalesce: bool = False


class TooManyOpenError(Exception):
    """The customer has ``MAX_OPEN_TICKETS`` open tickets already (SPEC §4)."""

    def __init__(self, tickets: Sequence[Ticket], limit: int) -> None:
        super().__init__(f"{len(tickets)} open tickets, at most {limit}")
        self.tickets = tickets
        self.limit = limit


@dataclass(slots=True)
class Registration:
    ticket: Ticket
    created: bool


@dataclass(slots=True)
class RelayResult:
    ticket: Ticket
    reopened_from_waiting: bool = False
    after_hours_notice: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# Screenshots one ticket keeps from its dialog (SPEC §4); the dialog says what it did not take.
MAX_SCREENSHOTS = 10
# A coalesced relay's text (header + joined messages) stays under Telegram's 4096 characters.
COALESCED_TEXT_LIMIT = 3800
# copyMessages takes at most 100 message ids.
COPY_MESSAGES_LIMIT = 100


class TicketService:
    def __init__(
        self,
        *,
        clock: Clock,
        outbox: Outbox,
        config: DeskConfig,
        cards: Cards,
        render: Renderer,
        max_open_tickets: int = 5,
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.cards = cards
        self.render = render
        self.max_open_tickets = max_open_tickets
        # Installed modules' lookups of accounts the database does not know (SPEC §12).
        self.account_lookups: Sequence[AccountLookup] = ()

    async def check_can_open(self, session: AsyncSession, customer_id: int) -> None:
        """Raise :class:`TooManyOpenError` when the customer may not open one more ticket."""
        open_tickets = await TicketRepo(session).open_for_customer(customer_id)
        if len(open_tickets) >= self.max_open_tickets:
            raise TooManyOpenError(open_tickets, self.max_open_tickets)

    # -- registration -------------------------------------------------------------------------

    async def register(
        self, session: AsyncSession, customer: User, draft: Draft, locale: str, *, tell: bool = True
    ) -> Registration:
        """Register the request once: a second Send of the same draft returns the first.
        ``tell=False``: the caller tells the customer itself (a channel with its own words)."""
        tickets = TicketRepo(session)
        existing = await tickets.by_intake_key(draft.key)
        if existing is not None:
            return Registration(existing, created=False)
        await self.check_can_open(session, customer.id)
        now = self.clock.now()
        # SPEC §12: the account decides the tariff (an unknown one: the default), kept on the
        # ticket so that a later import does not change what it was promised.
        account = await self.account(session, draft.account_number)
        tariffs = self.config.book
        known = account.tariff if account is not None else None
        tariff = known.code if known is not None else tariffs.default_code
        priority = tariffs.priority(tariff, draft.kind)
        ticket = await tickets.add(
            Ticket(
                intake_key=draft.key,
                customer_id=customer.id,
                account_number=draft.account_number,
                topic=draft.topic,
                kind=draft.kind,
                description=draft.description,
                priority=priority,
                status=Status.NEW,
                line=1,
                locale=locale,
                created_at=now,
                updated_at=now,
                reopened_count=0,
                tariff=tariff,
            )
        )
        await tickets.add_attachments(
            [
                Attachment(
                    ticket_number=ticket.number,
                    kind=item.kind,
                    file_id=item.file_id,
                    file_unique_id=item.file_unique_id,
                    file_name=item.file_name,
                    mime_type=item.mime_type,
                    created_at=now,
                )
                for item in draft.attachments[:MAX_SCREENSHOTS]
            ]
        )
        customer.last_account_number = draft.account_number
        EventRepo(session).record(
            ticket.number,
            at=now,
            type="created",
            actor_id=customer.id,
            actor_role="customer",
            new=Status.NEW.value,
            details={"kind": draft.kind.value, "priority": int(priority), "tariff": tariff},
        )
        if tell:
            self._notify_registered(session, ticket, locale)
        await self.cards.post(session, ticket, _media_groups(draft.attachments[:MAX_SCREENSHOTS]))
        return Registration(ticket, created=True)

    async def account(self, session: AsyncSession, number: str) -> AccountInfo | None:
        """A known customer account (imported), with its organisation and tariff."""
        return await account_info(session, number, self.config.book, self.account_lookups)

    def registered_notice(self, ticket: Ticket) -> Registered:
        """What the customer is told of a new ticket; out of support hours it says when the
        team will answer, which counts as the ticket's one after-hours notice (SPEC §3)."""
        now = self.clock.now()
        terms = self.config.terms(ticket.tariff, ticket.kind)
        hours = terms.hours
        opens_at = None if hours.is_open(now) else hours.next_opening(now)
        if opens_at is not None:
            ticket.after_hours_notice_at = now
        return Registered(
            number=ticket.number,
            topic=ticket.topic,
            kind=ticket.kind,
            priority=ticket.priority,
            opens_at=opens_at,
            now=now,
            hours_text=self.config.hours_text_of(terms),
            tz=self.config.tz,
        )

    def _notify_registered(self, session: AsyncSession, ticket: Ticket, locale: str) -> None:
        notice = self.registered_notice(ticket)
        to_customer(self.outbox, session, ticket, self.render(notice, locale).text)

    # -- after registration ---------------------------------------------------------------------

    async def open_tickets(self, session: AsyncSession, customer_id: int) -> Sequence[Ticket]:
        return await TicketRepo(session).open_for_customer(customer_id)

    async def ticket_of_reply(
        self, session: AsyncSession, customer_id: int, replied_message_id: int
    ) -> Ticket | None:
        """The customer's own open ticket that the replied-to message belongs to, if any."""
        number = await LinkRepo(session).ticket_of_customer_message(customer_id, replied_message_id)
        if number is None:
            return None
        ticket = await TicketRepo(session).get(number)
        if ticket is None or ticket.customer_id != customer_id or not is_open(ticket.status):
            return None
        return ticket

    async def customer_ticket(
        self, session: AsyncSession, customer_id: int, number: int
    ) -> Ticket | None:
        """A ticket by number, only if it is this customer's (callback data can be forged)."""
        ticket = await TicketRepo(session).get(number)
        if ticket is None or ticket.customer_id != customer_id:
            return None
        return ticket

    async def relay(
        self,
        session: AsyncSession,
        customer: User,
        ticket: Ticket,
        items: Sequence[RelayItem],
        *,
        locale: str,
    ) -> RelayResult:
        """Add the customer's message(s) to their open ticket and relay them to staff, in
        their order: albums together, messages beyond the customer's pace coalesced."""
        attachments = [item.attachment for item in items if item.attachment is not None]
        return await self.take_in(
            session,
            customer,
            ticket,
            details={"message_ids": [item.message_id for item in items]},
            locale=locale,
            attachments=attachments,
            relay=lambda: self._relay_to_staff(session, customer, ticket, items),
        )

    async def take_in(
        self,
        session: AsyncSession,
        customer: User,
        ticket: Ticket,
        *,
        details: dict[str, Any],
        locale: str,
        attachments: Sequence[AttachmentIn] = (),
        relay: Callable[[], Awaitable[None]] | None = None,
    ) -> RelayResult:
        """What any channel's follow-up does to its ticket: kept in the history, an answer
        to staff's question puts the ticket back in work, ``relay`` brings the words to staff,
        and out of support hours the customer is told once when the team will answer."""
        if ticket.customer_id != customer.id or not is_open(ticket.status):
            raise PermissionError(f"ticket #{ticket.number} is not an open ticket of {customer.id}")
        now = self.clock.now()
        result = RelayResult(ticket)
        events = EventRepo(session)
        if attachments:
            await TicketRepo(session).add_attachments(
                [
                    Attachment(
                        ticket_number=ticket.number,
                        kind=a.kind,
                        file_id=a.file_id,
                        file_unique_id=a.file_unique_id,
                        file_name=a.file_name,
                        mime_type=a.mime_type,
                        created_at=now,
                    )
                    for a in attachments
                ]
            )
        events.record(
            ticket.number,
            at=now,
            type="customer_message",
            actor_id=customer.id,
            actor_role="customer",
            details=details,
        )
        if ticket.status is Status.WAITING_CUSTOMER:
            apply(
                session,
                ticket,
                Action.CUSTOMER_ANSWERED,
                actor_id=customer.id,
                role="customer",
                now=now,
                hours=self.config.terms(ticket.tariff, ticket.kind).hours,
            )
            result.reopened_from_waiting = True
            await self.cards.refresh(session, ticket)
        ticket.updated_at = now
        if relay is not None:
            await relay()
        terms = self.config.terms(ticket.tariff, ticket.kind)
        if not terms.hours.is_open(now) and ticket.after_hours_notice_at is None:
            ticket.after_hours_notice_at = now
            result.after_hours_notice = True
            notice = AfterHours(
                number=ticket.number,
                opens_at=terms.hours.next_opening(now),
                now=now,
                hours_text=self.config.hours_text_of(terms),
                tz=self.config.tz,
            )
            to_customer(self.outbox, session, ticket, self.render(notice, locale).text)
        return result

    async def _relay_to_staff(
        self,
        session: AsyncSession,
        customer: User,
        ticket: Ticket,
        items: Sequence[RelayItem],
    ) -> None:
        index = 0
        while index < len(items):
            item = items[index]
            if item.media_group_id is not None and item.media is not None:
                # An album arrives as one update per part: the parts at hand go together.
                album = [item]
                while (
                    index + len(album) < len(items)
                    and items[index + len(album)].media_group_id == item.media_group_id
                    and items[index + len(album)].media is not None
                ):
                    album.append(items[index + len(album)])
                index += len(album)
                await self._relay_album(
                    session,
                    ticket,
                    [part.message_id for part in album],
                    [part.media for part in album if part.media is not None],
                    item.media_group_id,
                )
                continue
            index += 1
            if item.coalesce and await self._coalesce(session, customer, ticket, item):
                continue
            self._relay_copy(session, customer, ticket, item)

    def _relay_copy(
        self, session: AsyncSession, customer: User, ticket: Ticket, item: RelayItem
    ) -> None:
        staff = self.config.staff_chat_id
        payload: dict[str, Any] = {
            "chat_id": staff,
            "from_chat_id": ticket.customer_id,
            "message_id": item.message_id,
        }
        # What a join at send time needs (bot/services/coalescing.py): the text, its time and
        # who wrote it.
        text = item.text_html if item.text_length <= COALESCED_TEXT_LIMIT - 200 else None
        tags = TicketTags(
            customer_message_ids=[item.message_id],
            text=text,
            sent=(item.sent_at or self.clock.now()).timestamp(),
            name=display_name(customer) if text is not None else None,
        )
        if ticket.card_message_id is not None:
            payload["reply_parameters"] = _reply_to(ticket.card_message_id)
        else:  # the card is still on its way: the sender fills its id in
            tags.reply_to_card = True
        self.outbox.add(
            session,
            Intent(
                chat_id=staff,
                method=methods.CopyMessage,
                payload=payload,
                purpose="relay",
                subject=ticket.number,
                rank=int(ticket.priority),
                refs=Refs(party=ticket.customer_id, joins=True),
                tags=tags,
            ),
        )

    async def _coalesce(
        self, session: AsyncSession, customer: User, ticket: Ticket, item: RelayItem
    ) -> bool:
        """A message beyond the customer's pace joins the ticket's last queued relay when that
        is a coalesced one no sender has touched yet, or starts one (SPEC §4, §8): texts are
        joined under one header saying who wrote and when; in a forum, other messages go as
        one ``copyMessages`` (the topic says whose they are; in a plain group each file stays
        a reply to the card, which copyMessages cannot be). False: relay it on its own."""
        staff = self.config.staff_chat_id
        if item.text_html is not None:
            if item.text_length > COALESCED_TEXT_LIMIT - 200:
                return False  # no room for anything else: it goes as it is
            kind = "text"
        elif self.config.staff_is_forum and item.media_group_id is None:
            kind = "copies"
        else:
            return False
        last = await DeliveryRepo(session).last_unclaimed(stream_of(staff, ticket.number))
        if last is not None and not _can_join(last, kind, item):
            last = None
        held = TicketTags.of(last) if last is not None else None
        if kind == "copies":
            ids = [*(held.customer_message_ids if held else []), item.message_id]
            payload = {"chat_id": staff, "from_chat_id": ticket.customer_id, "message_ids": ids}
            tags = TicketTags(coalesced=kind, customer_message_ids=ids)
        else:
            sent_at = (item.sent_at or self.clock.now()).timestamp()
            first = held.first if held is not None and held.first is not None else sent_at
            body = f"{held.body}\n{item.text_html}" if held else item.text_html
            chars = held.chars + 1 + item.text_length if held else item.text_length
            count = (held.count if held else 0) + 1
            tags = TicketTags(
                coalesced=kind,
                reply_to_card=True,
                coalesced_message_ids=[
                    *(held.coalesced_message_ids if held else []),
                    item.message_id,
                ],
                body=body,
                chars=chars,
                count=count,
                first=first,
                last=sent_at,
            )
            heading = CoalescedHeader(
                name=display_name(customer),
                count=count,
                first=datetime.fromtimestamp(first, UTC),
                last=datetime.fromtimestamp(sent_at, UTC),
                tz=self.config.tz,
            )
            header = self.render(heading, self.config.default_locale).text
            payload = {"chat_id": staff, "text": f"{header}\n{body}"}
        if last is None:
            self.outbox.add(
                session,
                Intent(
                    chat_id=staff,
                    method=methods.SendMessage if kind == "text" else methods.CopyMessages,
                    payload=payload,
                    purpose="relay",
                    subject=ticket.number,
                    rank=int(ticket.priority),
                    refs=Refs(party=ticket.customer_id, grows=True),
                    tags=tags,
                    delay=self.config.coalesce_grace,
                ),
            )
        else:
            Outbox.revise(last, payload, tags)  # written with the rest at the commit
        return True

    async def _relay_album(
        self,
        session: AsyncSession,
        ticket: Ticket,
        ids: list[int],
        album: list[dict[str, Any]],
        media_group_id: str,
    ) -> None:
        staff = self.config.staff_chat_id
        stream = stream_of(staff, ticket.number)
        delivery = await DeliveryRepo(session).pending_album(stream, media_group_id)
        if delivery is None:
            delivery = self.outbox.add(
                session,
                Intent(
                    chat_id=staff,
                    method=methods.SendMediaGroup,
                    payload={"chat_id": staff, "media": []},
                    purpose="relay",
                    subject=ticket.number,
                    rank=int(ticket.priority),
                    delay=ALBUM_GRACE,
                    refs=Refs(party=ticket.customer_id, grows=True),
                    tags=TicketTags(
                        reply_to_card=True,
                        customer_message_ids=[],
                        media_group_id=media_group_id,
                    ),
                ),
            )
        payload, tags = dict(delivery.payload), TicketTags.of(delivery)
        tags.customer_message_ids = merge_album(payload, tags.customer_message_ids, ids, album)
        Outbox.revise(delivery, payload, tags)
        await session.flush()

    async def carry_edit(self, session: AsyncSession, customer: User, message: Message) -> None:
        """The customer edited a message already relayed: edit the staff's copy too."""
        links = LinkRepo(session)
        copy_id = await links.staff_message_of_customer(customer.id, message.message_id)
        number = await links.ticket_of_customer_message(customer.id, message.message_id)
        ticket = await TicketRepo(session).get(number) if number is not None else None
        if ticket is None or ticket.customer_id != customer.id:
            return
        if copy_id is not None:
            edit_copy(self.outbox, session, ticket, self.config.staff_chat_id, copy_id, message)
        elif message.text is not None and is_open(ticket.status):
            # It went to staff joined with others (coalesced): the new text follows on its own.
            notice = CoalescedEdit(display_name(customer), message.html_text)
            text = self.render(notice, self.config.default_locale).text
            self.cards.post_to_ticket(session, ticket, text, purpose="relay")

    async def customer_tickets(
        self, session: AsyncSession, customer_id: int, *, limit: int = 15
    ) -> tuple[Sequence[Ticket], int]:
        repo = TicketRepo(session)
        return await repo.for_customer(customer_id, limit=limit), await repo.count_for_customer(
            customer_id
        )


def _can_join(last: Delivery, kind: str, item: RelayItem) -> bool:
    """Whether ``item`` may join the queued relay ``last`` (of the same kind, with room)."""
    held = TicketTags.of(last)
    if last.purpose != "relay" or held.coalesced != kind:
        return False
    if kind == "text":
        return held.chars + 1 + item.text_length <= COALESCED_TEXT_LIMIT
    ids = held.customer_message_ids
    # copyMessages wants the ids in increasing order, as they are in one chat.
    return len(ids) < COPY_MESSAGES_LIMIT and ids[-1] < item.message_id


def _reply_to(message_id: int) -> dict[str, Any]:
    return {"message_id": message_id, "allow_sending_without_reply": True}


def _media_groups(attachments: Sequence[AttachmentIn]) -> list[list[dict[str, Any]]]:
    """Screenshots as albums of at most 10; photos and files cannot share one album."""
    groups: list[list[dict[str, Any]]] = []
    for kind in ("photo", "document"):
        items = [{"type": kind, "media": a.file_id} for a in attachments if a.kind == kind]
        groups += [items[i : i + 10] for i in range(0, len(items), 10)]
    return groups
