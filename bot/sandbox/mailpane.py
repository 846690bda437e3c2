"""The page's mail pane: the mailbox of a customer who writes by e-mail, as a small mail client
shows it, and a form that sends her mail.

Sending is what a mail client does: a MIME message to the support address through the
sandbox's SMTP server (``bot/sandbox/mailbox.py``), a copy kept in her Sent folder. The bot
then finds it in the support mailbox over IMAP, as it would at a real provider; nothing here
talks to the bot."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
from aiohttp import web

from bot.clock import ShiftedClock
from bot.mail.parse import html_to_text
from bot.sandbox.mailbox import HOST, INBOX, SENT, MailStore, StoredMail
from bot.sandbox.render import image_type
from bot.sandbox.web import FILE_POLICY, Refused, _form, _int, _json, disposition
from bot.sandbox.world import MailPerson

JsonDict = dict[str, Any]
FOLDERS = (INBOX, SENT)
_PARSER = BytesParser(policy=policy.default)
_SAFE_LINKS = ("http://", "https://")
SMTP_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ReadMail:
    """A mail as the pane shows it (parsed once: a stored mail never changes)."""

    sender: str
    sender_address: str
    to: str
    to_address: str
    subject: str
    text: str
    message_id: str
    in_reply_to: str
    references: str
    links: list[tuple[str, str]] = field(default_factory=list)
    files: list[Attachment] = field(default_factory=list)


class _Links(HTMLParser):
    """The http(s) links of an HTML part with their words (the Solved / Not solved buttons)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._href: str | None = None
        self._words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or None
            self._words = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._words.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            href = self._href.strip()
            if href.lower().startswith(_SAFE_LINKS) and href not in (u for _, u in self.found):
                self.found.append((" ".join("".join(self._words).split()) or href, href))
            self._href = None


def _content(part: Any) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError, AssertionError):  # an unknown charset, a broken encoding
        payload = part.get_payload(decode=True) or b""
        return bytes(payload).decode("utf-8", "replace")


def _display(value: str) -> tuple[str, str]:
    """ "Name <address>" → (the name, or the address when there is none; the address)."""
    pairs = getaddresses([value])
    if not pairs or not pairs[0][1]:
        return value.strip(), ""
    name, address = pairs[0]
    return name or address, address


def read_mail(raw: bytes) -> ReadMail:
    msg = _PARSER.parsebytes(raw)
    plain = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    html = _content(html_part) if html_part is not None else ""
    text = _content(plain) if plain is not None else html_to_text(html) if html else ""
    text = text.replace("\r\n", "\n")  # stored mail has CRLF line ends, as on the wire
    links: list[tuple[str, str]] = []
    if html:
        parser = _Links()
        parser.feed(html)
        parser.close()
        links = parser.found
    files = [
        Attachment(
            name=part.get_filename() or f"attachment-{number}",
            content=bytes(part.get_payload(decode=True) or b""),
        )
        for number, part in enumerate(msg.iter_attachments(), start=1)
    ]
    sender, sender_address = _display(str(msg.get("From", "")))
    to, to_address = _display(str(msg.get("To", "")))
    return ReadMail(
        sender=sender,
        sender_address=sender_address,
        to=to,
        to_address=to_address,
        subject=str(msg.get("Subject", "")),
        text=text.strip("\n"),
        message_id=str(msg.get("Message-ID", "")).strip(),
        in_reply_to=str(msg.get("In-Reply-To", "")).strip(),
        references=" ".join(str(msg.get("References", "")).split()),
        links=links,
        files=files,
    )


class MailPane:
    def __init__(
        self,
        store: MailStore,
        people: Sequence[MailPerson],
        *,
        support: str,
        support_name: str,
        smtp_port: int,
        clock: ShiftedClock,
        tz: ZoneInfo,
        clock_view: Callable[[], JsonDict],
    ) -> None:
        self.store = store
        self.people = {person.id: person for person in people}
        self.support = support
        self.support_name = support_name
        self.smtp_port = smtp_port
        self.clock = clock
        self.tz = tz
        self.clock_view = clock_view
        self._read: dict[tuple[str, str, int], ReadMail] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/mail", self.mailbox)
        app.router.add_get("/api/mail/message", self.message)
        app.router.add_get("/api/mail/file", self.file)
        app.router.add_post("/api/mail/send", self.send)
        app.router.add_post("/api/mail/seen", self.seen)

    # -- reading --------------------------------------------------------------------------------

    def _person(self, raw: Any) -> MailPerson:
        try:
            return self.people[int(raw)]
        except (TypeError, ValueError, KeyError):
            raise Refused("unknown person, or one who does not write by e-mail") from None

    @staticmethod
    def _folder(raw: Any) -> str:
        if raw not in FOLDERS:
            raise Refused(f"no folder {raw!r}")
        return str(raw)

    def _mail(self, person: MailPerson, folder: str, uid: Any) -> tuple[StoredMail, ReadMail]:
        stored = self.store.find(person.address, folder, _int(uid, 0))
        if stored is None:
            raise Refused("no such mail")
        key = (person.address, folder, stored.uid)
        if key not in self._read:
            self._read[key] = read_mail(stored.raw)
        return stored, self._read[key]

    def _when(self, stored: StoredMail) -> JsonDict:
        local = datetime.fromtimestamp(stored.received, self.tz)
        return {"date": local.strftime("%d.%m.%Y %H:%M"), "iso": local.isoformat()}

    def _item(self, person: MailPerson, folder: str, stored: StoredMail) -> JsonDict:
        _, mail = self._mail(person, folder, stored.uid)
        return {
            "uid": stored.uid,
            "folder": folder,
            "from": mail.sender,
            "to": mail.to,
            "subject": mail.subject,
            "seen": stored.has("\\Seen"),
            "files": len(mail.files),
            "preview": " ".join(mail.text.split())[:120],
        } | self._when(stored)

    async def mailbox(self, request: web.Request) -> web.Response:
        person = self._person(request.query.get("person"))
        folders = {
            folder: [
                self._item(person, folder, stored)
                for stored in reversed(self.store.folder(person.address, folder).mails)
            ]
            for folder in FOLDERS
        }
        return web.json_response(
            {
                "person": person.id,
                "name": person.name,
                "address": person.address,
                "support": f"{self.support_name} <{self.support}>",
                "folders": folders,
                "clock": self.clock_view(),
            }
        )

    async def message(self, request: web.Request) -> web.Response:
        person = self._person(request.query.get("person"))
        folder = self._folder(request.query.get("folder"))
        stored, mail = self._mail(person, folder, request.query.get("uid"))
        files = [
            {
                "name": attachment.name,
                "size": len(attachment.content),
                "image": image_type(attachment.content) is not None,
                "url": f"/api/mail/file?person={person.id}&folder={folder}&uid={stored.uid}"
                f"&index={index}",
            }
            for index, attachment in enumerate(mail.files)
        ]
        return web.json_response(
            self._item(person, folder, stored)
            | {
                "from_address": mail.sender_address,
                "to_address": mail.to_address,
                "message_id": mail.message_id,
                "in_reply_to": mail.in_reply_to,
                "text": mail.text,
                "links": [{"text": text, "url": url} for text, url in mail.links],
                "attachments": files,
            }
        )

    async def file(self, request: web.Request) -> web.Response:
        """An attachment: a raster image inline, anything else only as a download (as the
        chats' files, so nothing a mail carries runs on the page's origin)."""
        person = self._person(request.query.get("person"))
        folder = self._folder(request.query.get("folder"))
        _, mail = self._mail(person, folder, request.query.get("uid"))
        index = _int(request.query.get("index"), -1)
        if not 0 <= index < len(mail.files):
            raise web.HTTPNotFound()
        attachment = mail.files[index]
        shown = image_type(attachment.content)
        return web.Response(
            body=attachment.content,
            content_type=shown or "application/octet-stream",
            headers={
                "Cache-Control": "private, max-age=86400",
                "Content-Security-Policy": FILE_POLICY,
                "Content-Disposition": disposition(
                    "inline" if shown else "attachment", attachment.name
                ),
            },
        )

    # -- acting ---------------------------------------------------------------------------------

    async def seen(self, request: web.Request) -> web.Response:
        body = await _json(request)
        person = self._person(body.get("person"))
        stored, _ = self._mail(person, self._folder(body.get("folder")), body.get("uid"))
        if not stored.has("\\Seen"):
            self.store.mark(stored, ["\\Seen"])
        return web.json_response({"ok": True})

    async def send(self, request: web.Request) -> web.Response:
        fields, files = await _form(request)
        person = self._person(fields.get("person"))
        subject = " ".join(fields.get("subject", "").split())
        text = fields.get("text", "").replace("\r\n", "\n")
        if not subject and not text.strip() and not files:
            raise Refused("empty mail")
        message = EmailMessage()
        message["From"] = Address(person.name, addr_spec=person.address)
        message["To"] = Address(self.support_name, addr_spec=self.support)
        message["Subject"] = subject
        # The bot's clock, as everything else the page shows.
        message["Date"] = format_datetime(self.clock.now())
        message["Message-ID"] = make_msgid(domain=person.address.rpartition("@")[2])
        if fields.get("reply_uid"):
            _, original = self._mail(
                person, self._folder(fields.get("reply_folder", INBOX)), fields["reply_uid"]
            )
            if original.message_id:
                # What a mail client writes in a reply: the thread the desk follows.
                message["In-Reply-To"] = original.message_id
                message["References"] = " ".join(
                    filter(None, [original.references, original.message_id])
                )
        message["X-Mailer"] = "e-Comet sandbox mail pane"
        message.set_content(text if text.endswith("\n") else text + "\n")
        for name, declared, content in files:
            kind = image_type(content) or _type_of(name, declared)
            maintype, _, subtype = kind.partition("/")
            message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
        # After the body: setting it drops the Content-* headers set before.
        message["Content-Language"] = person.language
        try:
            await aiosmtplib.send(message, hostname=HOST, port=self.smtp_port, timeout=SMTP_TIMEOUT)
        except (aiosmtplib.SMTPException, OSError) as error:
            raise Refused(f"the mail server did not take the mail: {error}") from None
        kept = self.store.deliver(
            person.address, message.as_bytes(policy=policy.SMTP), SENT, ["\\Seen"]
        )
        return web.json_response({"folder": SENT, "uid": kept.uid})


def _type_of(name: str, declared: str) -> str:
    guessed = declared if "/" in declared else mimetypes.guess_type(name)[0]
    if not guessed or guessed.split("/")[0] in ("multipart", "message"):
        return "application/octet-stream"
    return guessed
