"""Reading an incoming e-mail: headers, the customer's new words, attachments (SPEC §10).

Everything here is pure: bytes in, data out, no I/O, no clock.

Hand-written on the standard library on purpose. The libraries that strip quoted history
(``mail-parser-reply``, ``email-reply-parser``, ``quotequail``, ``talon``) know no Russian
reply headers ("пишет:", Gmail-ru's "…, Иван <ivan@x.ru>:", Mail.ru's "от …:", "Пересылаемое
сообщение"), and several cut polite sign-offs ("Thanks,", "Best regards") that are the
customer's own words; ``talon`` also pulls in scikit-learn. For HTML the usable converters
either are GPL (``html2text``, and it writes Markdown) or bring lxml plus extras
(``inscriptis`` needs ``requests``, ``html-text`` needs ``lxml-html-clean``) for what
``html.parser`` does here in a couple of hundred lines we can reason about: script content
never reaches the text (the parser skips it, and a regex pass before it cuts every
"<script … </script>" whatever tokenising corner it sits in), links keep their address,
blockquotes become "> " lines so one cleaner handles plain and HTML replies alike.

What a mail that cannot be read means: :func:`parse_mail` is best effort for what is
damaged inside a readable mail (undecodable text is replaced, a bad date is ``None``, an
unreadable header counts as absent, a missing Message-ID is made up from the bytes) and
raises :class:`MailParseError`, and nothing else, when there is nothing to work with: no
bytes, no headers, no sender address to answer, or a structure the email package cannot
walk (thousands of nested multiparts). The caller keeps such a mail and tells staff
(SPEC §10).
"""

from __future__ import annotations

import codecs
import email.policy
import functools
import hashlib
import html as html_lib
import mimetypes
import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

# What Telegram shows as a photo (sendPhoto takes these; a GIF shows as an animation).
PHOTO_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

# Clients label the same formats with old or vendor names.
_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-citrix-png": "image/png",
    "image/x-citrix-jpeg": "image/jpeg",
}

# Cryptographic signatures of the mail itself are not something the customer attached.
_SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)

# A References header is kept whole up to this many ids; past it the root and the newest
# ones (where threading looks) are what matters.
MAX_REFERENCES = 100


@dataclass(frozen=True, slots=True)
class MailAttachment:
    filename: str
    content_type: str
    data: bytes

    @property
    def is_image(self) -> bool:
        """Whether Telegram would show it as a picture rather than a file."""
        return self.content_type in PHOTO_TYPES


class MailParseError(ValueError):
    """The bytes are not a mail we can read: no headers or no sender to answer."""


@dataclass(frozen=True, slots=True)
class IncomingMail:
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    sender: str
    sender_name: str
    subject: str
    text: str
    full_text: str
    attachments: tuple[MailAttachment, ...]
    locale: str | None
    date: datetime | None
    automated: str | None
    # Forms and some mailing services send from a robot address with the person in
    # Reply-To; whether to answer there is the caller's choice (it can also be a loop).
    reply_to: str | None = None


_PARSER = BytesParser(policy=email.policy.default)


def parse_mail(raw: bytes) -> IncomingMail:
    """Read one RFC 5322 message. Raises :class:`MailParseError` and nothing else."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MailParseError("a mail is bytes")
    raw = bytes(raw)
    if not raw.strip():
        raise MailParseError("empty message")
    try:
        return _parse(raw)
    except MailParseError:
        raise
    except Exception as exc:  # the email package has known crashes on junk (IndexError, …)
        raise MailParseError(f"unreadable message: {type(exc).__name__}") from exc


def _parse(raw: bytes) -> IncomingMail:
    msg = _PARSER.parsebytes(raw)
    if not list(msg.raw_items()):
        raise MailParseError("no headers")
    sender_addr, sender_display = _first_address(msg, "From")
    if sender_addr is None:
        raise MailParseError("no sender address")
    subject = squash(_header_text(msg, "Subject"))
    full_text = _normalise_text("\n\n".join(t for t in _body_texts(msg) if t.strip()))
    text = clean_body(full_text)
    if not text and full_text and _FORWARD_SUBJECT.match(subject):
        # Forwarded without a word of their own: what they forwarded is the request.
        text = full_text
    reply_to, _ = _first_address(msg, "Reply-To")
    return IncomingMail(
        message_id=_message_id(msg, raw),
        in_reply_to=tuple(_ids(_raw_values(msg, "In-Reply-To"))),
        references=trim_references(_ids(_raw_values(msg, "References"))),
        sender=sender_addr,
        sender_name=squash(sender_display) or sender_addr.partition("@")[0],
        subject=subject,
        text=text,
        full_text=full_text,
        attachments=tuple(_attachments(msg)),
        locale=_locale(msg),
        date=_date(msg),
        automated=_automated(msg, sender_addr, subject),
        reply_to=reply_to if reply_to != sender_addr else None,
    )


# --- headers ----------------------------------------------------------------------------


def _valid_str(text: str) -> str:
    """Lone surrogates (from undecodable bytes) cannot be stored or sent; mark them instead."""
    return re.sub(r"[\ud800-\udfff]+", "\ufffd", text)


def _raw_values(msg: Message, name: str) -> list[str]:
    """The header's values as sent, 8-bit bytes decoded (RFC 6532 UTF-8, else a guess)."""
    wanted = name.lower()
    values = []
    for key, value in msg.raw_items():
        if key.lower() == wanted and isinstance(value, str):
            # Unfold: line breaks go, the whitespace after them stays (RFC 5322 §2.2.3).
            values.append(_unescape_8bit("".join(re.split(r"\r\n|\r|\n", value))))
    return values


def _unescape_8bit(value: str) -> str:
    # The parser keeps raw 8-bit header bytes as surrogate escapes.
    if not re.search(r"[\udc80-\udcff]", value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    return decode_bytes(data, None)


def _header_text(msg: Message, name: str) -> str:
    values = _raw_values(msg, name)
    if not values:
        return ""
    return _decoded_header(name, values[0])


def _decoded_header(name: str, value: str) -> str:
    """RFC 2047 decoding through the policy's header classes, the raw value if they choke."""
    try:
        return _valid_str(str(email.policy.default.header_factory(name, value)))
    except Exception:  # noqa: BLE001 - the header parser has known crashes on junk
        return _valid_str(value)


def _first_address(msg: Message, name: str) -> tuple[str | None, str]:
    """The first usable address of an address header, lowercased, with its display name."""
    for value in _raw_values(msg, name):
        for addr, display in _addresses(name, value):
            addr = _valid_str(addr).strip().lower()
            if _looks_like_address(addr):
                return addr, _valid_str(display)
    return None, ""


def _addresses(name: str, value: str) -> Iterable[tuple[str, str]]:
    """(address, display name) pairs of an address header, decoded.

    Display names are decoded as unstructured text: the policy's address parser keeps the
    space between two encoded words of one name ("Пётр" folded in two comes back "Пё тр").
    """
    try:
        pairs = getaddresses([value])
    except Exception:  # noqa: BLE001 - a junk header is as good as no header
        pairs = []
    found = [
        (addr, _decoded_header("Subject", display) if display else "") for display, addr in pairs
    ]
    if any(_looks_like_address(addr.strip().lower()) for addr, _ in found):
        return found
    try:  # obsolete syntax getaddresses gives up on
        header = email.policy.default.header_factory(name, value)
        return [(a.addr_spec, a.display_name) for a in getattr(header, "addresses", ())]
    except Exception:  # noqa: BLE001 - the address parser has known crashes on junk
        return []


def _looks_like_address(addr: str) -> bool:
    local, at, domain = addr.rpartition("@")
    return bool(at and local and domain) and not re.search(r"[\s<>()\[\],;:\"\\]", addr)


def mailbox_in(value: str) -> tuple[str, str] | None:
    """The first (address, display name) in a From-style value ("Name <a@b.c>"); the address
    lowercased, the name decoded and on one line. None if there is no address."""
    for addr, display in _addresses("From", value):
        addr = _valid_str(addr).strip().lower()
        if _looks_like_address(addr):
            return addr, squash(display)
    return None


def address_in(value: str) -> str | None:
    """The address in a From-style value, lowercased; None if there is none.

    For comparing a sender with the desk's own MAIL_FROM (mail loops, SPEC §10).
    """
    found = mailbox_in(value)
    return found[0] if found else None


_ID = re.compile(r"<([^<>\s]+)>")


def _ids(values: Iterable[str]) -> list[str]:
    """Message ids in order of appearance, each once, each as "<...>"."""
    seen: dict[str, None] = {}
    for value in values:
        found = _ID.findall(value)
        if not found:
            # Some mailers drop the brackets around a lone id.
            token = value.strip()
            found = [token] if token and not re.search(r"[\s<>]", token) and "@" in token else []
        for one in found:
            seen.setdefault(f"<{_valid_str(one)}>", None)
    return list(seen)


def trim_references(ids: Sequence[str], limit: int = MAX_REFERENCES) -> tuple[str, ...]:
    """At most ``limit`` ids: the thread's root and the newest ones, in order."""
    ids = list(dict.fromkeys(ids))
    if len(ids) <= limit:
        return tuple(ids)
    if limit <= 1:
        return tuple(ids[-limit:]) if limit == 1 else ()
    return (ids[0], *ids[len(ids) - (limit - 1) :])


def _message_id(msg: Message, raw: bytes) -> str:
    found = _ids(_raw_values(msg, "Message-ID"))
    if found:
        return found[0]
    # Stable, so fetching the same mail twice is seen as the same mail.
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@synthetic.invalid>"


def _date(msg: Message) -> datetime | None:
    values = _raw_values(msg, "Date")
    if not values:
        return None
    try:
        parsed = parsedate_to_datetime(values[0].strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" means "zone unknown"; UTC is the honest reading.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_LANG = re.compile(r"[a-z]{2,3}")


def _locale(msg: Message) -> str | None:
    for value in _raw_values(msg, "Content-Language"):
        found = _first_language(value)
        if found:
            return found
    for part in msg.walk():
        if part is msg:
            continue
        for value in _raw_values(part, "Content-Language"):
            found = _first_language(value)
            if found:
                return found
    for value in _raw_values(msg, "Accept-Language"):
        found = _best_language(value)
        if found:
            return found
    return None


def _primary(tag: str) -> str | None:
    primary = tag.strip().split(";")[0].strip().replace("_", "-").split("-")[0].lower()
    return primary if _LANG.fullmatch(primary) else None


def _first_language(value: str) -> str | None:
    for tag in value.split(","):
        found = _primary(tag)
        if found:
            return found
    return None


def _best_language(value: str) -> str | None:
    """Accept-Language: the tag with the highest q, the first one on a tie."""
    best: tuple[float, str] | None = None
    for tag in value.split(","):
        found = _primary(tag)
        if not found:
            continue
        weight = 1.0
        q = re.search(r";\s*q\s*=\s*([0-9.]+)", tag)
        if q:
            try:
                weight = float(q.group(1))
            except ValueError:
                weight = 0.0
        if weight > 0 and (best is None or weight > best[0]):
            best = (weight, found)
    return best[1] if best else None


# --- noise: auto-replies, bulk mail, bounces --------------------------------------------

_ROBOT_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliver(ed|able)|delivery (status notification|failure|has failed)"
    r"|returned mail|mail delivery (failed|failure|system)|failure notice"
    r"|недоставленное сообщение|не удалось доставить|сообщение не доставлено"
    r"|ошибка доставки)",
    re.IGNORECASE,
)
# Only the prefix form ("Автоответ: …"): a subject is the customer's own words ("I am out of
# ideas", "OOO Ромашка", "В отпуске не работает VPN"), and headers catch most robots anyway.
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer)|autoreply|autoresponse|auto"
    r"|out of (?:the )?office(?: reply)?|vacation reply|автоответ|автоматический ответ"
    r"|авто-ответ|réponse automatique|abwesenheitsnotiz|automatische antwort)\s*[:：]",
    re.IGNORECASE,
)


def _automated(msg: Message, sender: str, subject: str) -> str | None:
    """Why this mail is noise rather than a person writing, or None (SPEC §10).

    Mailing-list headers (List-Id, Precedence: list) are deliberately not noise: a desk
    mailbox is often fed through a group alias that adds them to every customer's mail.
    """
    local = sender.partition("@")[0]
    report = ""
    if msg.get_content_type() == "multipart/report":
        report = str(msg.get_param("report-type", "") or "").lower()
    return_path = " ".join(_raw_values(msg, "Return-Path")).strip()
    if report == "delivery-status" or local in _ROBOT_SENDERS:
        return "bounce"
    if return_path == "<>" and _BOUNCE_SUBJECT.match(subject):
        return "bounce"
    if report:  # read receipts (disposition-notification) and other machine reports
        return "auto-reply"
    auto = " ".join(_raw_values(msg, "Auto-Submitted")).strip().lower()
    if auto and not auto.startswith("no"):
        return "auto-reply" if auto.startswith("auto-replied") else "auto-submitted"
    if any(_raw_values(msg, h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply")):
        return "auto-reply"
    precedence = " ".join(_raw_values(msg, "Precedence")).strip().lower()
    if precedence == "auto_reply":
        return "auto-reply"
    if precedence in {"bulk", "junk"}:
        return "bulk"
    if _AUTO_SUBJECT.match(subject):
        return "auto-reply"
    if return_path == "<>":  # the null sender is reserved for notifications (RFC 5321)
        return "auto-submitted"
    return None


# --- body ---------------------------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes: the declared charset if it is real and fits, else UTF-8, else a guess.

    The guess is for the legacy Cyrillic mail this desk gets: KOI8-R puts lowercase letters
    where windows-1251 puts capitals, and ordinary text is mostly lowercase.
    """
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = None
    if charset:
        try:
            return _valid_str(data.decode(charset))
        except (UnicodeDecodeError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    upper_1251 = sum(1 for b in data if 0xC0 <= b <= 0xDF)
    lower_1251 = sum(1 for b in data if b >= 0xE0)
    guess = "koi8-r" if upper_1251 > lower_1251 else "cp1251"
    return _valid_str(data.decode(guess, errors="replace"))


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _is_body_text(part: Message) -> bool:
    return (
        part.get_content_type() in {"text/plain", "text/html"}
        and part.get_content_disposition() != "attachment"
        and not part.get_param("name")
        and not part.get_filename()
    )


def _part_text(part: Message) -> str:
    text = decode_bytes(_payload_bytes(part), part.get_content_charset())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_type() == "text/html":
        return html_to_text(text)
    if str(part.get_param("format", "") or "").lower() == "flowed":
        delsp = str(part.get_param("delsp", "") or "").lower() == "yes"
        return unflow(text, delsp=delsp)
    return text


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _body_texts(part: Message) -> list[str]:
    """The readable text of a (sub)tree, in reading order, without attachments."""
    ctype = part.get_content_type()
    maintype = part.get_content_maintype()
    if maintype == "message":  # a forwarded .eml is an attachment, not the customer's words
        return []
    if maintype == "multipart":
        children = _children(part)
        if not children:
            return []
        if ctype == "multipart/alternative":
            return _best_alternative(children)
        if ctype == "multipart/related":
            return _body_texts(_related_root(part, children))
        if ctype in {"multipart/report", "multipart/signed"}:
            return _body_texts(children[0])
        if ctype == "multipart/encrypted":
            return []
        return [text for child in children for text in _body_texts(child)]
    if _is_body_text(part):
        return [_part_text(part)]
    return []


def _best_alternative(children: list[Message]) -> list[str]:
    # The plain part when it says something; else the richest readable one (RFC 2046: last).
    for child in children:
        if child.get_content_type() == "text/plain" and _is_body_text(child):
            texts = _body_texts(child)
            if "".join(texts).strip():
                return texts
    for child in reversed(children):
        texts = _body_texts(child)
        if "".join(texts).strip():
            return texts
    return []


def _related_root(part: Message, children: list[Message]) -> Message:
    start = part.get_param("start")
    if isinstance(start, str) and start:
        for child in children:
            if str(child.get("Content-ID", "")).strip() == start.strip():
                return child
    return children[0]


def unflow(text: str, *, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed: soft line breaks (a trailing space) join lines."""
    out: list[str] = []
    current: str | None = None
    depth_now = 0

    def emit(depth: int, body: str) -> None:
        out.append(f"{'>' * depth} {body}".rstrip() if depth else body)

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):  # space-stuffing
            body = body[1:]
        soft = body.endswith(" ") and body != "-- "
        if current is not None and depth != depth_now:
            emit(depth_now, current)
            current = None
        piece = body[:-1] if soft and delsp else body
        current = piece if current is None else current + piece
        depth_now = depth
        if not soft:
            emit(depth, current)
            current = None
    if current is not None:
        emit(depth_now, current)
    return "\n".join(out)


def _attachments(msg: Message) -> list[MailAttachment]:
    found: list[MailAttachment] = []
    _collect(msg, found, in_alternative=False)
    return found


def _collect(part: Message, found: list[MailAttachment], *, in_alternative: bool) -> None:
    ctype = part.get_content_type()
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        for child in _children(part):
            _collect(child, found, in_alternative=ctype == "multipart/alternative")
        return
    if maintype == "message":
        if ctype == "message/rfc822":
            attached = _attached_message(part, len(found) + 1)
            if attached is not None:
                found.append(attached)
        return  # delivery reports and the like are not files anyone attached
    if _is_body_text(part) or (in_alternative and maintype == "text"):
        return
    if ctype in _SIGNATURE_TYPES:
        return
    data = _payload_bytes(part)
    if not data:
        return
    filename = _raw_filename(part)
    content_type = _content_type(ctype, filename, data)
    found.append(
        MailAttachment(
            filename=safe_filename(filename, content_type, len(found) + 1),
            content_type=content_type,
            data=data,
        )
    )


def _raw_filename(part: Message) -> str:
    name = part.get_filename() or part.get_param("name") or ""
    return _decoded_header("Subject", name) if isinstance(name, str) else ""


def _attached_message(part: Message, number: int) -> MailAttachment | None:
    children = _children(part)
    if not children:
        return None
    try:
        data = children[0].as_bytes(policy=email.policy.default.clone(refold_source="none"))
    except Exception:  # noqa: BLE001 - a broken inner message is dropped, not the whole mail
        return None
    subject = squash(_header_text(children[0], "Subject"))
    name = _raw_filename(part) or (f"{subject}.eml" if subject else "")
    return MailAttachment(
        filename=safe_filename(name, "message/rfc822", number),
        content_type="message/rfc822",
        data=data,
    )


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _sniff_image(data: bytes) -> str | None:
    for magic, ctype in _MAGIC:
        if data.startswith(magic):
            return ctype
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _content_type(declared: str, filename: str, data: bytes) -> str:
    ctype = _TYPE_ALIASES.get(declared, declared)
    if ctype in PHOTO_TYPES or ctype in {"application/octet-stream", "image/unknown"}:
        # Mislabelled pictures are common (octet-stream, a PNG called image/jpeg).
        sniffed = _sniff_image(data)
        if sniffed:
            return sniffed
    if ctype == "application/octet-stream" and filename:
        guessed, _ = mimetypes.guess_type(filename, strict=False)
        if guessed and guessed not in PHOTO_TYPES:
            return guessed
    return ctype


def safe_filename(name: str, content_type: str, number: int) -> str:
    """A name that is safe to save or send: no folders, no control characters, not empty."""
    name = _valid_str(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = squash(name).lstrip(".").strip()
    if len(name) > 150:
        stem, dot, ext = name.rpartition(".")
        name = stem[: 150 - len(ext) - 1] + dot + ext if dot and len(ext) <= 10 else name[:150]
    if name:
        return name
    ext = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    if content_type == "message/rfc822":
        ext = ".eml"
    kind = content_type.partition("/")[0] if content_type.startswith("image/") else "attachment"
    return f"{kind}-{number}{ext}"


# --- text helpers -------------------------------------------------------------------------

# Invisible characters mail composers scatter (zero-width spaces in preheaders, BOMs).
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u034f\u00ad]")
# Unicode's control characters (category Cc) but the tab and the line break.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def squash(text: str) -> str:
    """One line, single spaces, no control characters."""
    text = _CONTROL.sub(" ", _INVISIBLE.sub("", _valid_str(text)))
    return " ".join(text.split())


def _normalise_text(text: str) -> str:
    text = _INVISIBLE.sub("", _valid_str(text)).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.replace("\xa0", " "))
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n").rstrip()


# --- subjects, ticket numbers, account numbers ------------------------------------------

_TICKET_TAG = re.compile(r"\[#(\d{1,18})\]")
# The whole run of reply/forward prefixes at once ("Re: Fwd: Ответ:"), so a subject of a
# thousand "Re:" costs one pass.
_REPLY_PREFIXES = re.compile(
    r"^(?:\s*(?:re|fwd?|fw|aw|wg|sv|vs|tr|rif|res|enc|ответ|отв|пересл|переслать)"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*)+",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|fw|wg|tr|enc|пересл)\s*[:：]", re.IGNORECASE)


def ticket_number_in(subject: str) -> int | None:
    """The ticket number of the first "[#N]" tag in a subject; a bare "#N" is not one."""
    found = _TICKET_TAG.search(subject)
    return int(found.group(1)) if found else None


def strip_ticket_tags(text: str) -> str:
    while True:
        stripped = _TICKET_TAG.sub(" ", text)
        if stripped == text:
            return text
        text = stripped


def topic_of(subject: str, limit: int = 100) -> str:
    """A ticket topic from a subject: no Re:/Fwd:/Ответ: prefixes, no [#N] tags, ≤ limit."""
    text = squash(subject)
    while True:
        before = text
        text = squash(strip_ticket_tags(text))
        text = _REPLY_PREFIXES.sub("", text, count=1).strip()
        if text == before:
            break
    return _shorten(text, limit)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > (limit - 1) // 2:
        cut = cut[:space]
    cut = cut.rstrip(string.punctuation + " ") or cut.rstrip()
    return cut + "…"


# Words after which customers write their account number; a number near one of them wins
# over a year or an order number that comes first.
_ACCOUNT_WORDS = re.compile(
    r"^(сч[её]т\w*|аккаунт\w*|account\w*|acc|лс|л/с|лицев\w*|договор\w*|id|ид|кабинет\w*"
    r"|логин\w*|login|клиент\w*|client\w*|customer\w*|номер\w*|number|no)$",
    re.IGNORECASE,
)
_EDGE_PUNCTUATION = string.punctuation.replace("+", "") + "«»“”„‘’…—–№"


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def account_number_in(text: str, pattern: str | re.Pattern[str]) -> str | None:
    """The first token of ``text`` that fully matches ``pattern`` (ACCOUNT_NUMBER_PATTERN).

    Tokens are split on whitespace and trimmed of punctuation ("счёт 12345678." → 12345678;
    "счёт:12345678" too). A token right after a word like "счёт"/"account" is preferred, so
    "с 2024 года, аккаунт 5551234" gives 5551234. "[#N]" ticket tags are not candidates;
    phone numbers with "+" and dates with dots are single tokens that do not match digits.
    """
    regex = _compiled(pattern) if isinstance(pattern, str) else pattern
    words = strip_ticket_tags(text).split()
    candidates: list[tuple[int, str]] = []  # (index of the word, token)
    for index, word in enumerate(words):
        for token in _tokens(word):
            if regex.fullmatch(token):
                candidates.append((index, token))
                break
    if not candidates:
        return None
    labels = {index for index, word in enumerate(words) if _is_account_label(word)}
    for index, token in candidates:
        if any(near in labels for near in range(index - 3, index + 1)):
            return token
    return candidates[0][1]


def _is_account_label(word: str) -> bool:
    head = re.split(r"[:=№#]", word)[0].strip(_EDGE_PUNCTUATION)
    return bool(_ACCOUNT_WORDS.match(head)) or word.lstrip("([«\"'").startswith("№")


def _tokens(word: str) -> list[str]:
    stripped = word.strip(_EDGE_PUNCTUATION)
    found = [stripped] if stripped else []
    # "счёт:12345678", "ЛС№12345", "id=42424242": a label glued to the number.
    parts = re.split(r"[:=№#]", word)
    if len(parts) > 1:
        tail = parts[-1].strip(_EDGE_PUNCTUATION)
        if tail and tail != stripped:
            found.append(tail)
    return found


# --- quoted history and signatures -------------------------------------------------------

_QUOTE_LINE = re.compile(r"^\s{0,3}>")
_SEPARATOR_LINE = re.compile(r"^\s*[_\-=*]{5,}\s*$")
_SIG_DELIMITER = re.compile(r"^--\s?$")
_REPLY_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:original message|исходное сообщение|оригинальное сообщение"
    r"|ursprüngliche nachricht|message d'origine|reply message)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_FORWARD_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:forwarded message|пересылаемое сообщение|переадресованное сообщение"
    r"|пересланное сообщение|weitergeleitete nachricht|message transféré)\s*-{2,}"
    r"|(?:begin forwarded message|начало переадресованного сообщения"
    r"|начало пересылаемого сообщения)\s*:)\s*$",
    re.IGNORECASE,
)
_FROM_FIELD = re.compile(r"^\s*\*{0,2}(?:from|от|від|von|de)\s*:\*{0,2}\s*\S", re.IGNORECASE)
_OTHER_FIELD = re.compile(
    r"^\s*\*{0,2}(?:sent|date|to|cc|subject|отправлено|дата|кому|копия|тема|gesendet|an"
    r"|betreff|envoyé|à|objet)\s*:",
    re.IGNORECASE,
)
_WROTE = re.compile(
    r"(?:\bwrote|\bпишет|\bписал|\bнаписал|\bнаписала|\bнаписал\s?\(а\)|\bнаписал\s?\(-а\)"
    r"|\bschrieb|\ba écrit|\bescribió|\bha scritto|\bnapisał\(a\)|\bnapisał)\s*:\s*$",
    re.IGNORECASE,
)
_ADDRESS_COLON = re.compile(r"(?:<[^<>\s@]+@[^<>\s]+>|\S+@\S+\.\w+|\[mailto:[^\]\s]+\])\s*:\s*$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:sent from|sent with|sent via|sent using|get outlook for|отправлено с|отправлено со"
    r"|отправлено из|отправлено через|послано с|послано из)\b.{0,60}$",
    re.IGNORECASE,
)
_MOBILE_WORDS = re.compile(
    r"iphone|ipad|android|mobile|мобильн|mail\.ru|яндекс|yandex|outlook|samsung|galaxy|huawei"
    r"|xiaomi|blackberry|gmail|почт|proton|yahoo|mail for windows|телефон|планшет|устройств"
    r"|смартфон|aquamail|spark|bluemail",
    re.IGNORECASE,
)
QUOTE_CONTEXT_LINES = 3


def _is_quote(line: str) -> bool:
    return bool(_QUOTE_LINE.match(line))


def _attribution(lines: list[str], i: int) -> tuple[int, bool] | None:
    """A reply header ("On … wrote:", "… пишет:", "…, Иван <a@b.c>:") starting at line i.

    Returns (how many lines it spans, whether it is unmistakable). Gmail wraps long ones, so
    up to three lines are joined, but only when they start their own paragraph.
    """
    for span in (1, 2, 3):
        chunk = lines[i : i + span]
        if len(chunk) < span or any(not s.strip() or _is_quote(s) for s in chunk):
            return None
        if span > 1:
            if i > 0 and lines[i - 1].strip() and not _is_quote(lines[i - 1]):
                return None
            if lines[i].rstrip().endswith((".", "!", "?")):
                return None
        joined = " ".join(s.strip() for s in chunk)
        if len(joined) > 300:
            return None
        has_digit = bool(re.search(r"\d", joined))
        if _WROTE.search(joined):
            strong = has_digit or "@" in joined or bool(re.match(r"on\b", joined, re.I))
            return span, strong
        if _ADDRESS_COLON.search(joined):
            return span, has_digit
    return None


def _outlook_header(lines: list[str], i: int) -> bool:
    """ "From: …" followed by Sent:/To:/Subject: (or От:/Отправлено:/Кому:/Тема:) lines."""
    if not _FROM_FIELD.match(lines[i]):
        return False
    following = [s for s in lines[i + 1 : i + 8] if s.strip()][:4]
    return any(_OTHER_FIELD.match(s) for s in following)


def _next_filled(lines: list[str], start: int) -> int:
    while start < len(lines) and not lines[start].strip():
        start += 1
    return start


def clean_body(text: str) -> str:
    """The customer's own words: quoted history and signatures removed.

    Cuts at the first reply or forward header ("-----Original Message-----", an Outlook
    "From: … Sent: …" block, "On … wrote:" / "… пишет:" not followed by quoted lines),
    at a "-- " signature delimiter, drops the trailing quoted block and a "Sent from my
    iPhone"-style last line. Inline answers stay, each with up to three quoted lines
    before it for context. A forward with no words of the sender's own keeps what was
    forwarded. Polite sign-offs ("С уважением, Иван") are the customer's words and stay.
    """
    lines = _normalise_text(text).split("\n")
    own: list[str] = []
    forward_at: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if _is_quote(line):
            own.append(line)
            i += 1
            continue
        if _FORWARD_SEPARATOR.match(line):
            forward_at = i
            break
        if _REPLY_SEPARATOR.match(line) or _outlook_header(lines, i) or _SIG_DELIMITER.match(line):
            break
        found = _attribution(lines, i)
        if found:
            span, strong = found
            after = _next_filled(lines, i + span)
            if after < len(lines) and _is_quote(lines[after]):
                i += span  # the header of a quote that follows: drop the header only
                continue
            if strong:
                break
        own.append(line)
        i += 1
    own = _trim_tail(own)
    if own and _MOBILE_SIGNATURE.match(own[-1]) and _MOBILE_WORDS.search(own[-1]):
        own = _trim_tail(own[:-1])
    result = _normalise_text("\n".join(_shorten_quotes(own)))
    if not result and forward_at is not None:
        return _normalise_text("\n".join(lines[forward_at:]))
    return result


def _trim_tail(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and (
        not lines[end - 1].strip()
        or _is_quote(lines[end - 1])
        or _SEPARATOR_LINE.match(lines[end - 1])
    ):
        end -= 1
    return lines[:end]


def _shorten_quotes(lines: list[str]) -> list[str]:
    """Keep a few quoted lines before each inline answer, not the whole quoted message."""
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if _is_quote(line):
            run.append(line)
            continue
        if run:
            if len(run) > QUOTE_CONTEXT_LINES:
                out.append("> …")
            out.extend(run[-QUOTE_CONTEXT_LINES:])
            run = []
        out.append(line)
    return out[:-1]


# --- HTML ---------------------------------------------------------------------------------

# Content of these is never text for a reader (and script content must never pass).
_SKIPPED = frozenset(
    {
        "script",
        "style",
        "head",
        "title",
        "noscript",
        "template",
        "svg",
        "math",
        "object",
        "iframe",
        "select",
        "textarea",
        "button",
        "map",
    }
)
_BLOCKS = frozenset(
    {
        "div",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "nav",
        "aside",
        "address",
        "form",
        "fieldset",
        "figure",
        "figcaption",
        "center",
        "dl",
        "dt",
        "dd",
        "tr",
        "table",
        "thead",
        "tbody",
        "tfoot",
        "caption",
        "details",
        "summary",
        "ul",
        "ol",
    }
)
_RAW_TEXT = frozenset({"script", "style"})
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr"})
_SHOWN_SCHEMES = ("http://", "https://", "mailto:", "tel:")


def _tag_name(tag: str) -> str:
    # "<a<script>" opens a tag named "a<script" in a browser; reading it as <script> drops
    # a little more text than a browser shows and never shows anything script-like.
    return tag.rsplit("<", 1)[-1]


class _TextMaker(HTMLParser):
    def __init__(self, *, keep_line_breaks: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.keep_line_breaks = keep_line_breaks
        self.lines: list[str] = []
        self.line: list[str] = []
        self.skipping: list[str] = []
        self.depth = 0  # blockquote nesting
        self.pre = 0
        self.lists: list[list[int]] = []  # [counter] per list; -1 marks an unordered one
        self.links: list[tuple[str, list[str]]] = []  # (href, the link's text so far)
        self.cell_open = False

    # output
    def _prefix(self) -> str:
        return "> " * self.depth

    def newline(self) -> None:
        text = "".join(self.line).rstrip()
        self.lines.append((self._prefix() + text).rstrip() if text else self._prefix().rstrip())
        self.line = []

    def block(self) -> None:
        if "".join(self.line).strip():
            self.newline()
        self.line = []

    def paragraph(self) -> None:
        self.block()
        if self.lines and self.lines[-1].strip("> "):
            self.lines.append(self._prefix().rstrip())

    def _append(self, piece: str) -> None:
        if piece:
            self.line.append(piece)
            for _, label in self.links:
                label.append(piece)

    def text(self, data: str) -> None:
        if self.skipping:
            return
        if self.pre or self.keep_line_breaks:
            for n, piece in enumerate(data.replace("\r\n", "\n").split("\n")):
                if n:
                    self.newline()
                if not self.pre:
                    piece = re.sub(r"\s+", " ", piece.replace("\xa0", " "))
                self._append(piece)
            return
        data = re.sub(r"\s+", " ", data.replace("\xa0", " "))
        if not "".join(self.line).strip():
            data = data.lstrip()
        self._append(data)

    # parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = _tag_name(tag)
        if tag == "body":  # an unclosed <head> or <title> must not swallow the mail
            self.skipping.clear()
            return
        if self.skipping or tag in _SKIPPED:
            if tag in _SKIPPED:
                self.skipping.append(tag)
            return
        if tag == "br":
            self.newline()
        elif tag == "blockquote":
            self.paragraph()
            self.depth += 1
        elif tag in _PARAGRAPHS:
            self.paragraph()
            if tag == "pre":
                self.pre += 1
            elif tag == "hr":
                self.line.append("———")
                self.paragraph()
        elif tag in {"ul", "ol"}:
            self.block()
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self.block()
            marker = "- "
            if self.lists and self.lists[-1][0] >= 0:
                self.lists[-1][0] += 1
                marker = f"{self.lists[-1][0]}. "
            self.line.append("  " * max(len(self.lists) - 1, 0) + marker)
        elif tag in {"td", "th"}:
            if self.cell_open and "".join(self.line).strip():
                self.line.append("  ")
            self.cell_open = True
        elif tag == "tr":
            self.block()
            self.cell_open = False
        elif tag in _BLOCKS:
            self.block()
        elif tag == "a":
            href = next((v for k, v in attrs if k == "href" and v), "") or ""
            self.links.append((href.strip(), []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = _tag_name(tag)
        if tag in _RAW_TEXT:
            # Browsers ignore the slash: "<script/>x</script>" is a script, so x is skipped.
            self.handle_starttag(tag, attrs)
        elif tag not in _SKIPPED and tag != "a":  # "<svg/>" and "<a/>" hold nothing
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        tag = _tag_name(tag)
        if self.skipping:
            if tag in self.skipping:
                while self.skipping and self.skipping.pop() != tag:
                    pass
            return
        if tag == "blockquote":
            self.block()
            while self.lines and not self.lines[-1].strip("> "):  # its trailing blank lines
                self.lines.pop()
            self.depth = max(self.depth - 1, 0)
            self.paragraph()
        elif tag in _PARAGRAPHS:
            if tag == "pre":
                self.pre = max(self.pre - 1, 0)
            self.paragraph()
        elif tag in {"ul", "ol"}:
            if self.lists:
                self.lists.pop()
            self.block()
        elif tag in _BLOCKS or tag == "li":
            self.block()
        elif tag == "a" and self.links:
            href, label = self.links.pop()
            self._show_link(href, " ".join("".join(label).split()))

    def _show_link(self, href: str, label: str) -> None:
        if not href.lower().startswith(_SHOWN_SCHEMES):
            return  # javascript:, relative and cid: links say nothing to a reader
        target = href.split(":", 1)[1] if href.lower().startswith(("mailto:", "tel:")) else href
        target = target.split("?", 1)[0] if href.lower().startswith("mailto:") else target
        if not label:
            self.line.append(target)
        elif label.rstrip("/") != target.rstrip("/") and label != href:
            self.line.append(f" ({target})")

    def handle_data(self, data: str) -> None:
        self.text(data)

    def result(self) -> str:
        self.block()
        return "\n".join(self.lines)


_COMMENT = re.compile(r"<!--(?:-?>|.*?(?:--!?>|\Z))", re.DOTALL)
_SCRIPT = re.compile(
    r"<(script|style)(?![\w-]).*?(?:</\1(?=[\s/>])[^>]*>?|\Z)", re.DOTALL | re.IGNORECASE
)


def html_to_text(html: str, *, keep_line_breaks: bool = False) -> str:
    """Readable text from mail HTML; never raises, never lets script or style content through.

    Blocks become line breaks, paragraphs blank lines, <blockquote> "> " lines, list items
    "- "/"1. ", links "text (url)" (only http(s)/mailto/tel addresses are shown).
    ``keep_line_breaks`` reads Telegram-style HTML, where a newline in the text is a line
    break (mail HTML collapses it like a space).
    """
    try:
        html = _valid_str(str(html))
        # Comments go first, ended as browsers end them (an unclosed one runs to the end;
        # html.parser would hand it back as text). Then Outlook's <![if !mso]> and other
        # marked sections, which browsers treat as bogus comments.
        html = _COMMENT.sub("", html)
        html = re.sub(r"<!\[(?!CDATA\[)[^>]*>", "", html)
        # A second guard beside the parser's own skipping: whatever tokenising corner a
        # "<script" sits in ("<a<script>", "</<script>"), nothing up to its end is read.
        html = _SCRIPT.sub(" ", html)
        maker = _TextMaker(keep_line_breaks=keep_line_breaks)
        maker.feed(html)
        maker.close()
        return _normalise_text(maker.result())
    except Exception:  # noqa: BLE001 - a crude but safe reading beats losing the mail
        return _crude_html_to_text(str(html))


def _crude_html_to_text(html: str) -> str:
    html = _SCRIPT.sub(" ", _COMMENT.sub(" ", html))
    html = re.sub(r"(?is)<(head|title|template|noscript)\b.*?(?:</\1\s*>|$)", " ", html)
    html = re.sub(r"(?i)<br\s*/?>|</?(p|div|tr|li|h\d|blockquote)\b[^>]*>", "\n", html)
    html = re.sub(r"<[^>]*>?", " ", html)
    return _normalise_text(html_lib.unescape(html))
