"""Requests by e-mail (SPEC §10): a mail from an unknown thread becomes a ticket, a reply adds
to its ticket like a Telegram follow-up; robots' mail and the desk's own never do.

The mailbox watcher (``bot/channels/mail``) hands every new mail here, parsed, one unit of work
each. A mail is taken in once: its Message-ID is recorded with what became of it, in the same
transaction as the ticket it made, so a mailbox read again (a restart before the watcher marked
it, a second instance) adds nothing.

Customers who write by e-mail are people of the desk like Telegram users (``users`` rows with
an address, ids from ``MAIL_CUSTOMER_BASE`` up): their tickets have the same numbers, lifecycle
and staff side; what is sent to them leaves by SMTP (``bot/delivery/mail.py``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiogram import methods
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import MAIL_CUSTOMER_BASE, Delivery, Ticket, User, is_mail_customer
from bot.db.repositories import MailRepo, TicketRepo
from bot.delivery.intents import Intent, Refs
from bot.delivery.mail import Envelope
from bot.delivery.outbox import Outbox
from bot.domain.intake import DESCRIPTION_MAX, TOPIC_MAX, guess_kind, normalize_text
from bot.domain.tickets import Status, is_open
from bot.mail.parse import (
    IncomingMail,
    MailAttachment,
    account_number_in,
    ticket_number_in,
    topic_of,
)
from bot.services.cards import Cards
from bot.services.desk_config import DeskConfig
from bot.services.messaging import Messenger
from bot.services.notices_customer import (
    MailFilesTooLarge,
    MailPage,
    MailReceived,
    MailTooManyOpen,
)
from bot.services.notices_staff import MailFollowup, MailUnreadable
from bot.services.outgoing import TicketTags, to_customer
from bot.services.rendering import Renderer
from bot.services.resolution import ResolutionService
from bot.services.tickets import Draft, TicketService, TooManyOpenError

log = logging.getLogger(__name__)

# What Telegram takes from a bot as a photo: up to 10 MB. Other files go as documents up to
# 20 MB (Telegram takes 50, but the outbox holds the file until it is sent). A bigger file stays
# in the mailbox: staff are told its name and size, and the customer that it did not reach us.
PHOTO_LIMIT = 10 * 1024 * 1024
FILE_LIMIT = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Accepted:
    """What became of one mail: ``ticket`` (a new one), ``followup``, ``noise`` (a robot's,
    or the desk's own), ``duplicate`` (taken in before), ``refused`` (too many open)."""

    outcome: str
    ticket_number: int | None = None


class MailDesk:
    def __init__(
        self,
        *,
        clock: Clock,
        outbox: Outbox,
        config: DeskConfig,
        cards: Cards,
        tickets: TicketService,
        resolution: ResolutionService,
        render: Renderer,
        messenger: Messenger,
        own_address: str,
        account_pattern: re.Pattern[str],
    ) -> None:
        self.clock = clock
        self.outbox = outbox
        self.config = config
        self.cards = cards
        self.tickets = tickets
        self.resolution = resolution
        self.render = render
        self.messenger = messenger
        self.own_address = own_address.lower()
        self.account_pattern = account_pattern

    async def accept(self, session: AsyncSession, mail: IncomingMail) -> Accepted:
        """Take one mail in (the caller commits)."""
        if await MailRepo(session).known(mail.message_id):
            return Accepted("duplicate")
        if mail.automated is not None or mail.sender == self.own_address or not mail.sender:
            # Auto-replies, bounces and our own mail never make tickets: no loops (SPEC §10).
            log.info(
                "mail %s from %s is %s: nothing to do",
                mail.message_id,
                mail.sender,
                mail.automated or "the desk's own",
            )
            self._record(session, mail, None, "noise")
            return Accepted("noise")
        customer = await self._customer(session, mail)
        ticket = await self._thread_of(session, mail, customer)
        if ticket is not None and is_open(ticket.status):
            await self._followup(session, customer, ticket, mail)
            self._record(session, mail, ticket.number, "followup")
            return Accepted("followup", ticket.number)
        try:
            ticket = await self._open(session, customer, mail)
        except TooManyOpenError as refused:
            self._record(session, mail, None, "refused")
            numbers = [t.number for t in refused.tickets]
            await self._tell_refused(session, customer, numbers, refused.limit)
            return Accepted("refused")
        self._record(session, mail, ticket.number, "ticket")
        return Accepted("ticket", ticket.number)

    async def unreadable(self, session: AsyncSession, key: str, sender: str, error: str) -> None:
        """A mail that could not be read stays in the mailbox; staff are told where."""
        mails = MailRepo(session)
        if await mails.known(key):
            return
        now = self.clock.now()
        mails.record(key, ticket_number=None, direction="in", outcome="unparsed", at=now)
        text = self.render(MailUnreadable(sender=sender, error=error), self.config.default_locale)
        await self.messenger.send(
            session, self.config.staff_chat_id, text.text, purpose="staff_note"
        )

    # -- the links in mails (Solved / Not solved, the rating) -------------------------------------

    async def link_page(
        self, session: AsyncSession, number: int, action: str, round_: int
    ) -> tuple[MailPage, str]:
        """What a (signed) link shows before anything is done, and in which language: a GET
        changes nothing, as mail scanners open links to look at them."""
        ticket = await TicketRepo(session).get(number)
        if ticket is None or not is_mail_customer(ticket.customer_id):
            return MailPage(number, action, "invalid"), self.config.default_locale
        state = "ask" if self._link_fits(ticket, action, round_) else "stale"
        return MailPage(number, action, state, status=ticket.status), ticket.locale

    async def follow_link(
        self, session: AsyncSession, number: int, action: str, round_: int, reason: str = ""
    ) -> tuple[MailPage, str]:
        """The customer pressed the page's button: confirm, dispute (with a reason) or rate,
        exactly as the buttons in Telegram do (the caller commits)."""
        ticket = await TicketRepo(session).get(number, for_update=True)
        if ticket is None or not is_mail_customer(ticket.customer_id):
            return MailPage(number, action, "invalid"), self.config.default_locale
        locale = ticket.locale
        if not self._link_fits(ticket, action, round_):
            return MailPage(number, action, "stale", status=ticket.status), locale
        customer = await session.get(User, ticket.customer_id)
        assert customer is not None
        if action == "solved":
            await self.resolution.confirm(session, customer, number)
        elif action == "not-solved":
            reason = normalize_text(reason)
            if not reason:
                page = MailPage(number, action, "ask", ticket.status, reason_missing=True)
                return page, locale
            await self.resolution.dispute(session, customer, number, reason[:DESCRIPTION_MAX])
        else:
            await self.resolution.rate(session, customer, number, int(action.split("-")[1]))
        return MailPage(number, action, "done", status=ticket.status), locale

    @staticmethod
    def _link_fits(ticket: Ticket, action: str, round_: int) -> bool:
        """The link belongs to the ticket's current resolution and still has work to do."""
        if round_ != (ticket.reopened_count or 0):
            return False
        if action.startswith("rate-"):
            return ticket.status is Status.CLOSED and ticket.rating is None
        return ticket.status is Status.RESOLVED

    # -- who and which thread ------------------------------------------------------------------

    async def _customer(self, session: AsyncSession, mail: IncomingMail) -> User:
        now = self.clock.now()
        found = await session.execute(select(User).where(User.email == mail.sender))
        user = found.scalar_one_or_none()
        if user is not None:
            if mail.sender_name and user.first_name != mail.sender_name:
                user.first_name, user.updated_at = mail.sender_name, now
            if mail.locale:
                user.language_code = mail.locale
            return user
        highest = await session.scalar(
            select(func.max(User.id)).where(User.id >= MAIL_CUSTOMER_BASE)
        )
        user = User(
            id=(highest or MAIL_CUSTOMER_BASE) + 1,
            first_name=mail.sender_name or mail.sender,
            email=mail.sender,
            language_code=mail.locale,
            created_at=now,
            updated_at=now,
        )
        # Two instances taking in two new senders at once: the second insert fails, and its
        # unit of work is tried again by the watcher, which then finds the next free id.
        session.add(user)
        await session.flush()
        return user

    async def _thread_of(
        self, session: AsyncSession, mail: IncomingMail, customer: User
    ) -> Ticket | None:
        """The ticket a reply belongs to: by the mails it refers to, else by ``[#N]`` in its
        subject when the sender is that ticket's customer (anyone can write a number)."""
        ids = [*mail.in_reply_to, *reversed(mail.references)]
        if ids:
            known = await MailRepo(session).tickets_of(ids)
            for message_id in ids:
                number = known.get(message_id)
                if number is not None:
                    ticket = await TicketRepo(session).get(number)
                    if ticket is not None and ticket.customer_id == customer.id:
                        return ticket
        number = ticket_number_in(mail.subject)
        if number is not None:
            ticket = await TicketRepo(session).get(number)
            if ticket is not None and ticket.customer_id == customer.id:
                return ticket
        return None

    # -- a new request ---------------------------------------------------------------------------

    async def _open(self, session: AsyncSession, customer: User, mail: IncomingMail) -> Ticket:
        text = normalize_text(mail.text) or normalize_text(mail.full_text)
        topic = topic_of(mail.subject, TOPIC_MAX) or _first_words(text) or "—"
        # The customer's own words: the quoted history and the signature hold other numbers
        # (phones, earlier requests).
        account = account_number_in(f"{mail.subject}\n{mail.text}", self.account_pattern)
        locale = self._locale(customer)
        draft = Draft(
            key="mail:" + hashlib.sha256(mail.message_id.encode()).hexdigest()[:40],
            kind=guess_kind(f"{mail.subject}\n{text}"),
            topic=topic,
            description=_clip(text or topic, DESCRIPTION_MAX),
            account_number=account or "",
        )
        registration = await self.tickets.register(session, customer, draft, locale, tell=False)
        ticket = registration.ticket
        if account:
            customer.last_account_number = account
        notice = self.tickets.registered_notice(ticket)
        told = self.render(MailReceived(registered=notice, account_missing=not account), locale)
        to_customer(self.outbox, session, ticket, told.text)
        self._attachments(session, ticket, mail.attachments, customer)
        return ticket

    def _locale(self, customer: User) -> str:
        code = (customer.locale or customer.language_code or "").split("-")[0].lower()
        return code if code in ("ru", "en") else self.config.default_locale

    # -- a reply ---------------------------------------------------------------------------------

    async def _followup(
        self, session: AsyncSession, customer: User, ticket: Ticket, mail: IncomingMail
    ) -> None:
        text = normalize_text(mail.text) or normalize_text(mail.full_text)
        if ticket.status is Status.RESOLVED:
            reason = _not_solved_reason(text)
            if reason:
                # "Not solved" and why, by reply: the dispute rule, as the link's form does.
                await self.resolution.dispute(
                    session, customer, ticket.number, reason[:DESCRIPTION_MAX]
                )
                return
        locale = self._locale(customer)
        result = await self.tickets.take_in(
            session, customer, ticket, details={"mail": mail.message_id}, locale=locale
        )
        followup = MailFollowup(
            name=customer.first_name,
            address=customer.email or mail.sender,
            subject=mail.subject,
            text=text,
            attachments=len(mail.attachments),
        )
        rendered = self.render(followup, self.config.default_locale)
        self.cards.post_to_ticket(session, ticket, rendered.text, purpose="relay")
        self._attachments(session, ticket, mail.attachments, customer)
        if result.ticket.status is Status.RESOLVED:
            # Relayed, and the same question again (SPEC §3): a reply alone neither closes
            # nor reopens the ticket.
            await self.resolution.ask_again(session, ticket)

    # -- what else -------------------------------------------------------------------------------

    def _attachments(
        self,
        session: AsyncSession,
        ticket: Ticket,
        attachments: tuple[MailAttachment, ...],
        customer: User,
    ) -> None:
        """The mail's files, uploaded to the ticket's topic (or as replies to its card)."""
        staff = self.config.staff_chat_id
        too_large: list[str] = []
        for item in attachments:
            photo = item.is_image and len(item.data) <= PHOTO_LIMIT
            if not photo and len(item.data) > FILE_LIMIT:
                too_big = MailFollowup(
                    name=customer.first_name,
                    address=customer.email or "",
                    subject="",
                    text="",
                    attachments=0,
                    too_large=(item.filename, len(item.data)),
                )
                rendered = self.render(too_big, self.config.default_locale)
                self.cards.post_to_ticket(session, ticket, rendered.text)
                too_large.append(item.filename)
                continue
            field = "photo" if photo else "document"
            payload: dict[str, Any] = {
                "chat_id": staff,
                field: {
                    "__file_b64": base64.b64encode(item.data).decode(),
                    "filename": item.filename or ("image" if photo else "file"),
                },
            }
            self.outbox.add(
                session,
                Intent(
                    chat_id=staff,
                    method=methods.SendPhoto if photo else methods.SendDocument,
                    payload=payload,
                    purpose="relay",
                    subject=ticket.number,
                    rank=int(ticket.priority),
                    refs=Refs(party=ticket.customer_id),
                    tags=TicketTags(reply_to_card=True),
                ),
            )
        if too_large:
            notice = MailFilesTooLarge(ticket.number, too_large, FILE_LIMIT // 1024 // 1024)
            to_customer(
                self.outbox, session, ticket, self.render(notice, self._locale(customer)).text
            )

    async def _tell_refused(
        self, session: AsyncSession, customer: User, numbers: list[int], limit: int
    ) -> None:
        told = self.render(MailTooManyOpen(numbers=numbers, limit=limit), self._locale(customer))
        await self.messenger.send(session, customer.id, told.text, purpose="notice")

    def _record(
        self, session: AsyncSession, mail: IncomingMail, number: int | None, outcome: str
    ) -> None:
        MailRepo(session).record(
            mail.message_id,
            ticket_number=number,
            direction="in",
            outcome=outcome,
            at=self.clock.now(),
        )


async def mail_envelope(session: AsyncSession, delivery: Delivery) -> Envelope | None:
    """Whom a delivery to a customer who writes by e-mail goes to, in which ticket's thread
    (the mail transport's ``Addressing``)."""
    customer = await session.get(User, delivery.chat_id)
    if customer is None or not customer.email:
        return None
    ticket = (
        await session.get(Ticket, delivery.ticket_number)
        if delivery.ticket_number is not None
        else None
    )
    if ticket is None:
        return Envelope(
            to=customer.email,
            name=customer.first_name or None,
            locale=customer.locale or customer.language_code,
        )
    return Envelope(
        to=customer.email,
        name=customer.first_name or None,
        locale=customer.locale or ticket.locale,
        ticket_number=ticket.number,
        topic=ticket.topic,
        round=ticket.reopened_count or 0,
    )


# A reply to a resolved request that opens by saying it is not solved (SPEC §10: "replying
# 'not solved' with a reason also reopens"). Only the first words count: "not solved" further
# down may well be quoted or about something else.
_NOT_SOLVED = re.compile(
    r"^\W*(?:not\s+solved|(?:it\s+)?(?:did\s+not|didn'?t)\s+help|still\s+not\s+working"
    r"|не\s+решен[оа]?|не\s+решили|не\s+помогло|всё\s+ещё\s+не\s+работает"
    r"|все\s+еще\s+не\s+работает)\b[\s:;,.!—–-]*",
    re.IGNORECASE,
)


def _not_solved_reason(text: str) -> str | None:
    """The reason of a reply that says "not solved" first, or None; the words that follow
    the marker are the reason, or the whole reply when it has nothing after it."""
    found = _NOT_SOLVED.match(text)
    if found is None:
        return None
    rest = text[found.end() :].strip()
    return rest or None


def _first_words(text: str, limit: int = 60) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1].rsplit(" ", 1)[0] + "…"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
