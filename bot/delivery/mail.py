"""The mail transport: what the outbox holds for a customer who writes by e-mail leaves by SMTP
(SPEC §10), through the same queue, retries and limits as Telegram messages.

The use cases record the same intents for every customer (a notice is a ``sendMessage``, a
staff answer a ``copyMessage``, a staff album a ``sendMediaGroup``); for a customer whose id is
a mail customer's (``bot.domain.ids``) the sender hands them here instead of to the Bot API:

- a text becomes a mail with an HTML part (the notice's own HTML) and a plain text part, its
  buttons links (``button_link``: the signed Solved / Not solved pages of the web app);
- a staff answer's content is what the desk kept of it when it was written (``TicketTags.mail``:
  the Bot API has no way to read a message back), its photos and files downloaded from Telegram
  and attached;
- edits, reactions and chat actions have nothing to do in a mailbox and are done at once.

Every mail is a reply in the ticket's thread: ``[#N] topic`` as its subject, ``In-Reply-To``
the customer's last mail and ``References`` the thread, so mail clients keep one conversation.

Nothing twice: a delivery's Message-ID is derived from the delivery, and a mail is recorded in
``mail_messages`` once the server took it; a delivery sent again after a restart finds it there
and is not sent a second time. The one window left (the server took the mail, the process died
before the row was written) repeats the mail with the same Message-ID, which mail clients show
once.
"""

from __future__ import annotations

import base64
import html as html_lib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

import aiosmtplib
from aiogram import Bot
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import Delivery
from bot.db.repositories import DeliveryRepo, MailRepo
from bot.db.uow import transaction
from bot.delivery.outcomes import Failure, FailureKind
from bot.mail.compose import OutgoingMail, build_message, message_id_for, thread_subject
from bot.mail.parse import MailAttachment, html_to_text

log = logging.getLogger(__name__)

# Calls that change a message already sent: a mail cannot be changed, so they have nothing
# to do (what changed reaches the customer in the next mail anyway).
NOTHING_TO_DO_IN_MAIL = frozenset(
    {
        "EditMessageText",
        "EditMessageReplyMarkup",
        "EditMessageCaption",
        "EditMessageMedia",
        "DeleteMessage",
        "DeleteMessages",
        "SetMessageReaction",
        "SendChatAction",
        "PinChatMessage",
        "UnpinChatMessage",
    }
)
# References kept in a long thread: its first mail and the latest ones (RFC 5322 advises
# keeping the first; very long headers are refused by some servers).
REFERENCES_KEPT = 10
SMTP_TIMEOUT = 30.0
_IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


# A file to attach: a Telegram file id and its name, or an upload the outbox holds.
FileRef = tuple[str | None, str | None, dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Envelope:
    """Whom a delivery's mail goes to and which thread it belongs to: what the services know
    of a delivery's customer and ticket (the transport knows deliveries only)."""

    to: str
    name: str | None
    locale: str | None
    ticket_number: int | None = None
    topic: str = ""
    round: int = 0  # the ticket's resolution round: what its links are valid for


class Addressing(Protocol):
    """The envelope of a delivery to a customer who writes by e-mail (None: no address)."""

    async def __call__(self, session: AsyncSession, delivery: Delivery) -> Envelope | None: ...


class ButtonLink(Protocol):
    """A button's link in a mail about ticket ``number`` (None: the button is left out)."""

    def __call__(self, number: int, round_: int, callback_data: str) -> str | None: ...


class SmtpServer(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def password(self) -> str: ...
    @property
    def tls(self) -> str: ...  # "tls", "starttls" or "none"


class MailUnsendableError(Exception):
    """What a delivery holds cannot become a mail (nothing is known of a copied message)."""


class MailTransport:
    def __init__(
        self,
        *,
        bot: Bot,
        smtp: SmtpServer,
        sender: str,
        addressing: Addressing,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        button_link: ButtonLink | None = None,
        tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
    ) -> None:
        self.bot = bot
        self.smtp = smtp
        self.sender = sender
        self.addressing = addressing
        self.session_factory = session_factory
        self.clock = clock
        self.button_link = button_link
        self.tls_context = tls_context

    async def send(self, delivery: Delivery, payload: dict[str, Any]) -> list[int]:
        """Send what ``delivery`` holds as a mail; returns the "message ids" the outcome
        handlers keep (the delivery's own id: a mail has no other)."""
        if delivery.method in NOTHING_TO_DO_IN_MAIL:
            return []
        message_id = message_id_for(f"delivery-{delivery.id}", self.sender)
        async with self.session_factory() as session:
            if await MailRepo(session).known(message_id):
                return [delivery.id]  # sent before a restart: not again
            envelope = await self.addressing(session, delivery)
            if envelope is None:
                raise MailUnsendableError(f"no address for customer {delivery.chat_id}")
            thread = await self._thread(session, envelope.ticket_number)
            html, files = await self._content(session, delivery, payload)
        attachments = tuple([await self._download(*file) for file in files])
        html = self._with_links(html, payload.get("reply_markup"), envelope)
        subject = (
            # The desk's first mail of the thread (the acknowledgement) names it; later ones
            # are replies in it.
            thread_subject(
                envelope.ticket_number,
                envelope.topic,
                reply=any(way == "out" for _, way in thread),
            )
            if envelope.ticket_number is not None
            else self._subject_of(html)
        )
        mail = OutgoingMail(
            to=envelope.to,
            to_name=envelope.name,
            subject=subject,
            # Telegram's HTML breaks lines with newlines; a mail's HTML needs <br>.
            text=html_to_text(html, keep_line_breaks=True) if html else "",
            html=_mail_html(html) if html else None,
            message_id=message_id,
            in_reply_to=_last_incoming(thread),
            references=_references([mid for mid, _ in thread]),
            attachments=attachments,
            locale=envelope.locale,
            # The desk's own notices say so (RFC 3834); a person's answer does not.
            auto_submitted=delivery.purpose != "answer",
        )
        await self._smtp_send(mail)
        await self._record(message_id, envelope.ticket_number)
        return [delivery.id]

    # -- what the mail says ----------------------------------------------------------------------

    async def _content(
        self, session: AsyncSession, delivery: Delivery, payload: dict[str, Any]
    ) -> tuple[str, list[FileRef]]:
        """The mail's HTML and its files: (file_id or None, name, an upload or None)."""
        method = delivery.method
        if method == "SendMessage":
            return str(payload.get("text") or ""), []
        if method in ("SendPhoto", "SendDocument", "SendVideo", "SendAudio", "SendVoice"):
            field = method.removeprefix("Send").lower()
            return _caption(payload), [_file_of(payload.get(field))]
        if method == "SendMediaGroup":
            media = list(payload.get("media") or [])
            captions = [str(item.get("caption") or "") for item in media]
            return next((c for c in captions if c), ""), [
                _file_of(item.get("media")) for item in media
            ]
        if method == "CopyMessage":
            content = (delivery.context or {}).get("mail")
            if not content:
                content = await _content_copied_before(session, delivery, payload)
            if not content:
                raise MailUnsendableError(
                    f"nothing is known of staff message {payload.get('message_id')}"
                )
            copied: list[FileRef] = [
                (str(item["file_id"]), item.get("name"), None) for item in content.get("files", [])
            ]
            return str(content.get("html") or ""), copied
        raise MailUnsendableError(f"{method} cannot be sent by e-mail")

    def _with_links(self, html: str, markup: Any, envelope: Envelope) -> str:
        """Buttons become links: a URL button as it is, a callback button through
        ``button_link`` (signed, for that ticket only); a button without a link is left out."""
        if not isinstance(markup, dict):
            return html
        links: list[str] = []
        for row in markup.get("inline_keyboard") or []:
            for button in row:
                url = button.get("url")
                number = envelope.ticket_number
                if url is None and self.button_link is not None and number is not None:
                    data = button.get("callback_data")
                    url = self.button_link(number, envelope.round, data) if data else None
                if url:
                    text = html_lib.escape(str(button.get("text") or url))
                    links.append(f'<a href="{html_lib.escape(url)}">{text}</a>')
        if not links:
            return html
        return html + "\n\n" + "\n".join(links)

    @staticmethod
    def _subject_of(html: str) -> str:
        first = html_to_text(html).strip().splitlines()
        return first[0][:100] if first else "e-Comet"

    async def _thread(
        self, session: AsyncSession, ticket_number: int | None
    ) -> list[tuple[str, str]]:
        """The ticket's mails so far, oldest first: (Message-ID, direction)."""
        return [] if ticket_number is None else await MailRepo(session).thread(ticket_number)

    async def _download(
        self, file_id: str | None, name: str | None, upload: dict[str, Any] | None
    ) -> MailAttachment:
        if upload is not None:
            data = base64.b64decode(upload["__file_b64"])
            filename = str(upload.get("filename") or "file")
        else:
            assert file_id is not None
            file = await self.bot.get_file(file_id)
            buffer = await self.bot.download(file)
            assert buffer is not None
            data = buffer.read()
            filename = name or PurePosixPath(file.file_path or "file").name
        suffix = PurePosixPath(filename).suffix.lower()
        return MailAttachment(
            filename=filename,
            content_type=_IMAGE_TYPES.get(suffix, "application/octet-stream"),
            data=data,
        )

    # -- the server ------------------------------------------------------------------------------

    async def _smtp_send(self, mail: OutgoingMail) -> None:
        message = build_message(mail, self.sender, date=self.clock.now())
        smtp = self.smtp
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.user or None,
            password=smtp.password or None,
            use_tls=smtp.tls == "tls",
            start_tls=smtp.tls == "starttls",
            tls_context=self.tls_context() if smtp.tls != "none" else None,
            timeout=SMTP_TIMEOUT,
        )

    async def _record(self, message_id: str, ticket_number: int | None) -> None:
        try:
            async with transaction(self.session_factory) as uow:
                MailRepo(uow.session).record(
                    message_id,
                    ticket_number=ticket_number,
                    direction="out",
                    outcome="sent",
                    at=self.clock.now(),
                )
        except IntegrityError:
            pass  # recorded by an earlier attempt


def classify_mail(exc: BaseException, delivery: Delivery) -> Failure:
    """What an SMTP error means for the delivery that met it."""
    backoff = min(300.0, 2.0 ** min(delivery.attempts, 8))
    if isinstance(exc, MailUnsendableError):
        return Failure(FailureKind.REFUSED, f"MailUnsendable: {exc}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPSenderRefused):
        # The address does not exist or the server will never take it: like a blocked bot.
        return Failure(FailureKind.FORBIDDEN, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600:
        return Failure(FailureKind.REFUSED, f"SMTP {exc.code}: {exc.message}")
    # Connection trouble, a 4xx "try later", a timeout: the queue waits and tries again.
    return Failure(FailureKind.RETRY, f"{type(exc).__name__}: {exc}", backoff)


def _mail_html(telegram_html: str) -> str:
    """A notice's or answer's HTML (Telegram's subset, every user text in it escaped) as the
    HTML part of a mail: its line breaks kept, in a page of its own."""
    body = telegram_html.replace("\n", "<br>\n")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family: sans-serif;">\n{body}\n</body></html>\n'
    )


def _caption(payload: dict[str, Any]) -> str:
    return str(payload.get("caption") or "")


def _file_of(value: Any) -> FileRef:
    if isinstance(value, dict) and "__file_b64" in value:
        return None, str(value.get("filename") or "file"), value
    return str(value), None, None


def _last_incoming(thread: list[tuple[str, str]]) -> str | None:
    incoming = [mid for mid, direction in thread if direction == "in"]
    if incoming:
        return incoming[-1]
    return thread[-1][0] if thread else None


def _references(ids: list[str]) -> tuple[str, ...]:
    if len(ids) <= REFERENCES_KEPT:
        return tuple(ids)
    return (ids[0], *ids[-(REFERENCES_KEPT - 1) :])


async def _content_copied_before(
    session: AsyncSession, delivery: Delivery, payload: dict[str, Any]
) -> dict[str, Any] | None:
    """A staff message copied again (Resolve with the last answer): what its first copy kept."""
    staff_message = payload.get("message_id")
    for earlier in await DeliveryRepo(session).copies_of(delivery.chat_id, staff_message):
        content = (earlier.context or {}).get("mail")
        if content:
            return dict(content)
    return None
