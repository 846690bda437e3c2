"""Composing the desk's outgoing mail: threaded replies in plain text and HTML (SPEC §10).

Pure: builds an :class:`email.message.EmailMessage`; the SMTP transport sends it.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime

from bot.mail.parse import (
    MailAttachment,
    address_in,
    mailbox_in,
    safe_filename,
    squash,
    strip_ticket_tags,
    trim_references,
)

# Enough to thread in every client (they look at the root and the newest ids) and short
# enough that no server refuses the header.
MAX_OUTGOING_REFERENCES = 20


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    to: str
    to_name: str | None
    subject: str
    text: str
    html: str | None
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    attachments: tuple[MailAttachment, ...] = ()
    locale: str | None = None
    # The desk's own notices say so (RFC 3834) so that other robots do not answer them;
    # a staff member's answer is a person's mail.
    auto_submitted: bool = True


class _IdsHeader(str):
    """A header of message ids that folds only between ids.

    The email package would RFC 2047-encode an id longer than a line (Outlook's are close
    to it) and no client threads on an encoded id. An object with ``name`` and ``fold`` is
    what the policy stores and writes as is (see ``EmailPolicy.header_store_parse``).
    """

    name: str
    ids: tuple[str, ...]

    def __new__(cls, name: str, ids: Sequence[str]) -> _IdsHeader:
        header = super().__new__(cls, " ".join(ids))
        header.name = name
        header.ids = tuple(ids)
        return header

    def fold(self, *, policy: Policy) -> str:
        limit = policy.max_line_length or 0
        lines: list[str] = []
        line = f"{self.name}:"
        for one in self.ids:
            if limit and len(line) + 1 + len(one) > limit and line != f"{self.name}:":
                lines.append(line)
                line = ""
            line += f" {one}"
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


def _one_line(text: str | None) -> str:
    # Headers must not carry line breaks (that is how headers are injected).
    return squash(text or "")


_ID_BODY = re.compile(r"[^<>\s]+")


def _message_id(value: str) -> str:
    bare = value.strip().strip("<>").strip()
    if not _ID_BODY.fullmatch(bare) or not bare.isascii() or "@" not in bare:
        raise ValueError(f"not a message id: {value!r}")
    return f"<{bare}>"


def thread_references(references: Sequence[str], in_reply_to: str | None) -> tuple[str, ...]:
    """The References of a reply: the thread's chain ending with the mail answered (RFC 5322
    §3.6.4), valid ids only, each once, trimmed to the root and the newest ones."""
    chain: list[str] = []
    for value in (*references, *([in_reply_to] if in_reply_to else [])):
        try:
            one = _message_id(value)
        except ValueError:
            continue
        if one in chain:
            chain.remove(one)
        chain.append(one)
    return trim_references(chain, MAX_OUTGOING_REFERENCES)


def build_message(mail: OutgoingMail, sender: str, *, date: datetime | None = None) -> EmailMessage:
    """The MIME message for ``mail`` from ``sender`` (the MAIL_FROM setting).

    multipart/alternative (plain + HTML), inside multipart/mixed when there are attachments.
    ``date`` defaults to now; raises ValueError for a sender or recipient without an address.
    """
    mailbox = mailbox_in(sender)
    if mailbox is None:
        raise ValueError(f"MAIL_FROM has no address: {sender!r}")
    msg = EmailMessage()
    # Rebuilt from its parts: one mailbox, quoted and encoded as the name needs.
    msg["From"] = Address(display_name=mailbox[1], addr_spec=mailbox[0])
    msg["To"] = _recipient(mail.to, mail.to_name)
    msg["Subject"] = _one_line(mail.subject)
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = _IdsHeader("Message-ID", [_message_id(mail.message_id)])
    if mail.in_reply_to:
        msg["In-Reply-To"] = _IdsHeader("In-Reply-To", [_message_id(mail.in_reply_to)])
    references = thread_references(mail.references, mail.in_reply_to)
    if references:
        msg["References"] = _IdsHeader("References", references)
    if mail.auto_submitted:
        msg["Auto-Submitted"] = "auto-replied"
    # Exchange's out-of-office and auto-replies would otherwise answer the desk's mail.
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"

    text = _text_body(mail.text)
    msg.set_content(text, subtype="plain", charset="utf-8")
    body_html = mail.html if mail.html is not None else _html_document(text_to_html(text))
    msg.add_alternative(_valid(body_html), subtype="html", charset="utf-8")
    for number, attachment in enumerate(mail.attachments, start=1):
        maintype, _, subtype = attachment.content_type.partition("/")
        if not (re.fullmatch(r"[\w.+-]+", maintype) and re.fullmatch(r"[\w.+-]+", subtype)):
            maintype, subtype = "application", "octet-stream"
        if maintype in {"multipart", "message"}:
            # Those cannot be base64 (RFC 2046); as plain files they still open by their name.
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=safe_filename(attachment.filename, attachment.content_type, number),
        )
    # Set last: building the body clears and moves every Content-* header.
    if mail.locale and re.fullmatch(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*", mail.locale):
        msg["Content-Language"] = mail.locale
    return msg


def _recipient(to: str, name: str | None) -> Address:
    if address_in(to) is None:
        raise ValueError(f"not an e-mail address: {to!r}")
    try:
        return Address(display_name=_one_line(name), addr_spec=to.strip())
    except (ValueError, IndexError) as exc:  # the address parser's ways of saying "no"
        raise ValueError(f"not an e-mail address: {to!r}") from exc


def _valid(text: str) -> str:
    return re.sub(r"[\ud800-\udfff]+", "\ufffd", text)


def _text_body(text: str) -> str:
    text = _valid(text).replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def message_id_for(seed: str, sender: str) -> str:
    """A Message-ID that depends only on ``seed`` and the sender's address.

    A send retried after a restart gets the same id, so the receiving side can tell a
    duplicate. The sender address is part of the hash so two desks on one domain (staging
    and production) do not collide.
    """
    address = address_in(sender)
    if address is None:
        raise ValueError(f"MAIL_FROM has no address: {sender!r}")
    domain = address.rpartition("@")[2]
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = "mail.invalid"
    digest = hashlib.sha256(f"{seed}\x00{address}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"<{digest[:32]}@{domain}>"


def thread_subject(number: int, topic: str, *, reply: bool = False) -> str:
    """ "[#123] topic" (the tag threads replies that lost their headers); "Re: …" for a reply."""
    topic = squash(strip_ticket_tags(topic))
    subject = f"[#{number}] {topic}".strip()
    return f"Re: {subject}" if reply else subject


_URL = re.compile(r"\b(?:https?://|mailto:)[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"»”)]}"


def _link(url: str) -> tuple[str, str]:
    """The link and what follows it: trailing punctuation belongs to the sentence, except a
    closing bracket that pairs with one inside the link (Wikipedia-style addresses)."""
    tail = ""
    while url and url[-1] in _TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        tail = url[-1] + tail
        url = url[:-1]
    return url, tail


def _line_to_html(line: str) -> str:
    out: list[str] = []
    position = 0
    for found in _URL.finditer(line):
        url, tail = _link(found.group(0))
        out.append(html.escape(line[position : found.start()]))
        if url.lower() in {"http://", "https://", "mailto:"}:
            out.append(html.escape(found.group(0)))
        else:
            shown = url[len("mailto:") :] if url.lower().startswith("mailto:") else url
            out.append(f'<a href="{html.escape(url)}">{html.escape(shown)}</a>{html.escape(tail)}')
        position = found.end()
    out.append(html.escape(line[position:]))
    # Runs of spaces would collapse in HTML; keep the indentation people typed.
    return re.sub(r"(?<= ) ", "&nbsp;", "".join(out))


def text_to_html(text: str) -> str:
    """Plain text as an HTML fragment: everything escaped, blank lines → paragraphs,
    line breaks → <br>, http(s) and mailto addresses → links."""
    text = _valid(text).replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    paragraphs = [p.strip("\n") for p in re.split(r"\n(?:[ \t]*\n)+", text) if p.strip()]
    return "\n".join(
        "<p>" + "<br>\n".join(_line_to_html(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )


def _html_document(fragment: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family: sans-serif;">\n{fragment}\n</body></html>\n'
    )
