"""The sandbox's mail server, on this machine only: SMTP in (aiosmtpd), IMAP out (below), the
mailboxes in memory (and in the kept world with ``--db``).

The bot reads the support mailbox over IMAP and sends over SMTP exactly as it does against a
real provider (``MAIL_IMAP_URL`` / ``MAIL_SMTP_URL`` point here), so the sandbox shows the
e-mail channel's own code path. Every address has a mailbox: what the bot mails to a customer
lands in theirs, what a customer mails to the support address lands in the desk's.

The IMAP side is written here rather than taken from aioimaplib's ``imap_testing_server``,
which cannot serve: it imports ``pytz`` (not a dependency of aioimaplib, not installed), adds a
handler to its logger at import, takes every TCP chunk for whole lines (a command split in two
reads is lost), ignores passwords, keeps mails as parsed objects written out again (not the
bytes that were delivered), and is a GPL test helper rather than part of the library's API.
What this one speaks is what the bot's watcher and a plain client need, for one folder
(``INBOX``): CAPABILITY, NOOP, LOGIN, SELECT/EXAMINE, (UID) SEARCH by ALL, SEEN, UNSEEN,
KEYWORD, UNKEYWORD or a set, (UID) FETCH of UID, FLAGS, INTERNALDATE, RFC822.SIZE, the whole
mail or its header (with or without PEEK), (UID) STORE, IDLE, CHECK, CLOSE, LOGOUT. No
literals from the client, no TLS (it listens on 127.0.0.1), nothing is ever expunged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

INBOX, SENT = "INBOX", "Sent"
HOST = "127.0.0.1"
CAPABILITIES = "IMAP4rev1 IDLE"
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
MAX_LINE = 64 * 1024  # a command line; mails come in by SMTP, never by IMAP
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LINE_END = re.compile(rb"\r?\n")
_SET = re.compile(r"^(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*$")
_FLAG_SEARCH = {
    "SEEN": ("\\Seen", True),
    "UNSEEN": ("\\Seen", False),
    "ANSWERED": ("\\Answered", True),
    "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True),
    "UNDELETED": ("\\Deleted", False),
    "FLAGGED": ("\\Flagged", True),
    "UNFLAGGED": ("\\Flagged", False),
}


@dataclass(slots=True)
class StoredMail:
    uid: int
    raw: bytes  # as delivered, with CRLF line ends
    received: float  # when it arrived, by the bot's clock (epoch seconds)
    flags: list[str] = field(default_factory=list)

    def has(self, flag: str) -> bool:
        # Flags and keywords match without regard to case (RFC 3501 §2.3.2).
        return flag.lower() in (f.lower() for f in self.flags)


@dataclass(slots=True)
class Folder:
    mails: list[StoredMail] = field(default_factory=list)
    uid_next: int = 1


class MailStore:
    """Every address's folders, in memory. ``clock`` gives arrival times (the bot's clock, so
    mail moves with it); ``on_change`` is told of every change (the page redraws, the kept
    world is saved)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        on_change: Callable[[], None] = lambda: None,
        uid_validity: int | None = None,
    ) -> None:
        self.clock = clock
        self.on_change = on_change
        self.uid_validity = uid_validity or int(datetime.now(UTC).timestamp())
        self._folders: dict[tuple[str, str], Folder] = {}
        self._watchers: dict[str, list[Callable[[int], None]]] = {}

    def folder(self, address: str, name: str = INBOX) -> Folder:
        key = (address.strip().lower(), name)
        found = self._folders.get(key)
        if found is None:
            found = self._folders[key] = Folder()
        return found

    def deliver(
        self, address: str, raw: bytes, folder: str = INBOX, flags: Iterable[str] = ()
    ) -> StoredMail:
        box = self.folder(address, folder)
        mail = StoredMail(
            uid=box.uid_next,
            raw=_LINE_END.sub(b"\r\n", raw),
            received=self.clock(),
            flags=list(flags),
        )
        box.uid_next += 1
        box.mails.append(mail)
        if folder == INBOX:
            for tell in list(self._watchers.get(address.strip().lower(), ())):
                tell(len(box.mails))
        self.on_change()
        return mail

    def find(self, address: str, folder: str, uid: int) -> StoredMail | None:
        return next((m for m in self.folder(address, folder).mails if m.uid == uid), None)

    def mark(self, mail: StoredMail, flags: Iterable[str], how: str = "+") -> None:
        """``how``: "+" adds the flags, "-" removes them, "" replaces them all."""
        wanted = list(flags)
        if how == "":
            mail.flags = wanted
        elif how == "+":
            mail.flags.extend(f for f in wanted if not mail.has(f))
        else:
            gone = {f.lower() for f in wanted}
            mail.flags = [f for f in mail.flags if f.lower() not in gone]
        self.on_change()

    def watch(self, address: str, tell: Callable[[int], None]) -> Callable[[], None]:
        """``tell(count)`` on every mail that arrives in ``address``'s INBOX; returns the call
        that stops it (what IMAP IDLE needs)."""
        listeners = self._watchers.setdefault(address.strip().lower(), [])
        listeners.append(tell)
        return lambda: listeners.remove(tell)

    # -- the kept world ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything as JSON values (mails in base64)."""
        return {
            "uid_validity": self.uid_validity,
            "folders": [
                {
                    "address": address,
                    "folder": name,
                    "uid_next": box.uid_next,
                    "mails": [
                        {
                            "uid": m.uid,
                            "received": m.received,
                            "flags": list(m.flags),
                            "raw": base64.b64encode(m.raw).decode("ascii"),
                        }
                        for m in box.mails
                    ],
                }
                for (address, name), box in self._folders.items()
            ],
        }

    def restore(self, state: Any) -> None:
        """Brings back a :meth:`snapshot`; raises ValueError, KeyError or TypeError for
        anything else, and then changes nothing."""
        if not isinstance(state, dict) or not isinstance(state["folders"], list):
            raise ValueError("not a sandbox mail store")
        folders: dict[tuple[str, str], Folder] = {}
        for entry in state["folders"]:
            mails = [
                StoredMail(
                    uid=int(m["uid"]),
                    raw=base64.b64decode(m["raw"], validate=True),
                    received=float(m["received"]),
                    flags=[str(f) for f in m["flags"]],
                )
                for m in entry["mails"]
            ]
            folders[(str(entry["address"]), str(entry["folder"]))] = Folder(
                mails, int(entry["uid_next"])
            )
        self.uid_validity = int(state["uid_validity"])
        self._folders = folders


# -- SMTP ------------------------------------------------------------------------------------


class _Inbound:
    """aiosmtpd's handler: every recipient's INBOX gets the mail as it came."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if "@" not in address.strip("<>"):
            return "550 5.1.3 not a mailbox address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content
        if not isinstance(content, bytes):
            return "554 5.6.0 no message"
        for address in envelope.rcpt_tos:
            self.store.deliver(address.strip("<>"), content)
        return "250 2.0.0 delivered"


# -- IMAP ------------------------------------------------------------------------------------

Arg = str | list["Arg"]


class ImapBad(Exception):  # noqa: N818 - what IMAP calls it: the answer "BAD"
    """A command this server does not understand."""


class ImapNo(Exception):  # noqa: N818 - what IMAP calls it: the answer "NO"
    """A command understood and refused."""


def parse_args(text: str) -> list[Arg]:
    """Atoms, quoted strings and parenthesised lists; ``BODY[...]`` stays one atom."""
    stack: list[list[Arg]] = [[]]
    i = 0
    while i < len(text):
        char = text[i]
        if char == " ":
            i += 1
        elif char == "(":
            stack.append([])
            i += 1
        elif char == ")":
            if len(stack) == 1:
                raise ImapBad("unbalanced parenthesis")
            inner = stack.pop()
            stack[-1].append(inner)
            i += 1
        elif char == '"':
            i += 1
            chars: list[str] = []
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= len(text):
                raise ImapBad("unterminated string")
            stack[-1].append("".join(chars))
            i += 1
        else:
            start = i
            depth = 0
            while i < len(text) and (depth or text[i] not in ' ()"'):
                depth += text[i] == "["
                depth -= text[i] == "]"
                i += 1
            atom = text[start:i]
            if re.fullmatch(r"\{\d+\+?\}", atom):
                raise ImapBad("literals are not supported by this server")
            stack[-1].append(atom)
    if len(stack) != 1:
        raise ImapBad("unbalanced parenthesis")
    return stack[0]


def in_set(spec: str, largest: int) -> Callable[[int], bool]:
    """A sequence set ("1", "2:4", "3:*", "1,5") as a test of numbers; ``*`` is ``largest``."""
    if not _SET.match(spec):
        raise ImapBad(f"not a sequence set: {spec}")
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        low_text, _, high_text = part.partition(":")
        low = largest if low_text == "*" else int(low_text)
        high = low if not high_text else largest if high_text == "*" else int(high_text)
        ranges.append((min(low, high), max(low, high)))
    return lambda number: any(low <= number <= high for low, high in ranges)


def internal_date(received: float) -> str:
    moment = datetime.fromtimestamp(received, UTC)
    return f'"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment:%Y %H:%M:%S} +0000"'


def _header(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 4]


_PLAIN_ITEMS = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE"})
# The parts of a mail that can be fetched: name → whether it is the header only.
_SECTIONS = {"BODY[]": False, "RFC822": False, "BODY[HEADER]": True, "RFC822.HEADER": True}


def _section(item: str) -> str:
    """The name a fetched part is answered with: ``BODY.PEEK[]`` is answered as ``BODY[]``."""
    return item.replace("BODY.PEEK[", "BODY[", 1)


def _flags(mail: StoredMail) -> str:
    return "(" + " ".join(mail.flags) + ")"


def _has_flag(flag: str, wanted: bool) -> Callable[[StoredMail], bool]:
    return lambda mail: mail.has(flag) is wanted


def _uid_in(uids: set[int]) -> Callable[[StoredMail], bool]:
    return lambda mail: mail.uid in uids


def _text(arg: Arg) -> str:
    if not isinstance(arg, str):
        raise ImapBad("expected a string, not a list")
    return arg


class ImapSession:
    """One client's connection: NONAUTH → LOGIN → SELECT → commands, one at a time."""

    def __init__(
        self,
        store: MailStore,
        accounts: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.reader = reader
        self.writer = writer
        self.user: str | None = None
        self.selected: Folder | None = None

    def send(self, line: str | bytes) -> None:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")

    async def run(self) -> None:
        self.send(f"* OK [CAPABILITY {CAPABILITIES}] e-Comet sandbox IMAP ready")
        try:
            while True:
                try:
                    line = await self.reader.readline()
                except ValueError:  # a line past MAX_LINE
                    self.send("* BYE command line too long")
                    return
                if not line:
                    return
                if not await self._command(line.rstrip(b"\r\n").decode("utf-8", "replace")):
                    return
                await self.writer.drain()
        except ConnectionError:
            return
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()

    async def _command(self, line: str) -> bool:
        """Runs one command line; False: the connection ends (LOGOUT)."""
        tag, _, rest = line.partition(" ")
        if not tag or not rest:
            self.send(f"{tag or '*'} BAD expected a tag and a command")
            return True
        name, _, arguments = rest.partition(" ")
        name = name.upper()
        by_uid = name == "UID"
        try:
            args = parse_args(arguments)
            if by_uid:
                if not args:
                    raise ImapBad("UID of what?")
                name, args = _text(args[0]).upper(), args[1:]
                if name not in ("SEARCH", "FETCH", "STORE"):
                    raise ImapBad(f"UID {name} is not supported")
            handler = self._commands().get(name)
            if handler is None:
                raise ImapBad(f"{name} is not supported by this server")
            if name not in ("CAPABILITY", "NOOP", "LOGOUT", "LOGIN") and self.user is None:
                raise ImapBad("log in first")
            needs_folder = ("SEARCH", "FETCH", "STORE", "IDLE", "CHECK", "CLOSE")
            if name in needs_folder and self.selected is None:
                raise ImapBad("select a folder first")
            done: str = await handler(tag, args, by_uid)
        except ImapBad as bad:
            self.send(f"{tag} BAD {bad}")
            return True
        except ImapNo as no:
            self.send(f"{tag} NO {no}")
            return True
        except ConnectionError:
            raise
        except Exception:  # a fault here is told and logged, not a dropped connection
            log.exception("sandbox IMAP: %s failed", name)
            self.send(f"{tag} NO [SERVERBUG] the sandbox's mail server failed; see its log")
            return True
        self.send(f"{tag} {done}")
        return name != "LOGOUT"

    # -- commands: each returns the tagged answer -------------------------------------------

    def _commands(self) -> dict[str, Callable[[str, list[Arg], bool], Awaitable[str]]]:
        return {
            "CAPABILITY": self._capability,
            "NOOP": self._noop,
            "CHECK": self._check,
            "LOGOUT": self._logout,
            "LOGIN": self._login,
            "SELECT": self._select,
            "EXAMINE": self._examine,
            "CLOSE": self._close,
            "SEARCH": self._search,
            "FETCH": self._fetch,
            "STORE": self._store,
            "IDLE": self._idle,
        }

    async def _capability(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        self.send(f"* CAPABILITY {CAPABILITIES}")
        return "OK CAPABILITY completed"

    async def _noop(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        if self.selected is not None:
            self.send(f"* {len(self.selected.mails)} EXISTS")
        return "OK NOOP completed"

    async def _check(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        return "OK CHECK completed"

    async def _logout(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        self.send("* BYE logging out")
        return "OK LOGOUT completed"

    async def _login(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        if len(args) != 2:
            raise ImapBad("LOGIN user password")
        user, password = _text(args[0]).lower(), _text(args[1])
        known = self.accounts.get(user)
        if known is None or not secrets.compare_digest(known.encode(), password.encode()):
            raise ImapNo("[AUTHENTICATIONFAILED] wrong user name or password")
        self.user = user
        return f"OK [CAPABILITY {CAPABILITIES}] logged in"

    async def _select(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        return self._open(args, "READ-WRITE", "SELECT")

    async def _examine(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        return self._open(args, "READ-ONLY", "EXAMINE")

    def _open(self, args: list[Arg], mode: str, name: str) -> str:
        if len(args) != 1 or _text(args[0]).upper() != INBOX:
            self.selected = None
            raise ImapNo("this server has the folder INBOX only")
        assert self.user is not None
        box = self.selected = self.store.folder(self.user, INBOX)
        self.send("* FLAGS (" + " ".join(SYSTEM_FLAGS) + ")")
        self.send("* OK [PERMANENTFLAGS (" + " ".join(SYSTEM_FLAGS) + " \\*)] flags permitted")
        self.send(f"* {len(box.mails)} EXISTS")
        self.send("* 0 RECENT")
        self.send(f"* OK [UIDVALIDITY {self.store.uid_validity}] UIDs valid")
        self.send(f"* OK [UIDNEXT {box.uid_next}] predicted next UID")
        return f"OK [{mode}] {name} completed"

    async def _close(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        self.selected = None
        return "OK CLOSE completed"

    def _numbered(self) -> list[tuple[int, StoredMail]]:
        assert self.selected is not None
        return list(enumerate(self.selected.mails, start=1))

    def _matching(self, spec: str, by_uid: bool) -> list[tuple[int, StoredMail]]:
        numbered = self._numbered()
        if by_uid:
            largest = numbered[-1][1].uid if numbered else 0
            wanted = in_set(spec, largest)
            return [(seq, mail) for seq, mail in numbered if wanted(mail.uid)]
        wanted = in_set(spec, len(numbered))
        return [(seq, mail) for seq, mail in numbered if wanted(seq)]

    async def _search(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        words = [_text(arg) for arg in args]
        if words and words[0].upper() == "CHARSET":
            words = words[2:]  # the keys understood here are all plain ASCII
        tests: list[Callable[[StoredMail], bool]] = []
        i = 0
        while i < len(words):
            key = words[i].upper()
            i += 1
            if key == "ALL":
                continue
            if key in _FLAG_SEARCH:
                tests.append(_has_flag(*_FLAG_SEARCH[key]))
            elif key in ("KEYWORD", "UNKEYWORD", "UID"):
                if i >= len(words):
                    raise ImapBad(f"{key} of what?")
                value = words[i]
                i += 1
                if key == "UID":
                    tests.append(_uid_in({m.uid for _, m in self._matching(value, by_uid=True)}))
                else:
                    tests.append(_has_flag(value, key == "KEYWORD"))
            elif _SET.match(key):
                # A sequence set names mails by position; UIDs name the same mails for good.
                tests.append(_uid_in({m.uid for _, m in self._matching(key, by_uid=False)}))
            else:
                raise ImapBad(f"search key {key} is not supported by this server")
        found = [
            str(mail.uid if by_uid else seq)
            for seq, mail in self._numbered()
            if all(test(mail) for test in tests)
        ]
        self.send(" ".join(["* SEARCH", *found]))
        return f"OK {'UID ' if by_uid else ''}SEARCH completed"

    async def _fetch(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        if len(args) != 2:
            raise ImapBad("FETCH set items")
        items_arg = args[1]
        items = [
            _text(a).upper() for a in (items_arg if isinstance(items_arg, list) else [items_arg])
        ]
        if items == ["FAST"] or items == ["ALL"]:
            items = ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
        if by_uid and "UID" not in items:
            items.insert(0, "UID")
        unknown = [i for i in items if i not in _PLAIN_ITEMS and _section(i) not in _SECTIONS]
        if unknown:
            raise ImapBad(f"FETCH {unknown[0]} is not supported by this server")
        # The whole mail without PEEK reads it (RFC 3501 §6.4.5), and its new flags are told.
        reads = any(item in ("BODY[]", "RFC822") for item in items)
        for seq, mail in self._matching(_text(args[0]), by_uid):
            newly_read = reads and not mail.has("\\Seen")
            if newly_read:
                self.store.mark(mail, ["\\Seen"])
            parts = [self._item(item, mail) for item in items]
            if newly_read and "FLAGS" not in items:
                parts.append(f"FLAGS {_flags(mail)}".encode())
            self.send(f"* {seq} FETCH (".encode() + b" ".join(parts) + b")")
        return f"OK {'UID ' if by_uid else ''}FETCH completed"

    @staticmethod
    def _item(item: str, mail: StoredMail) -> bytes:
        if item == "UID":
            return f"UID {mail.uid}".encode()
        if item == "FLAGS":
            return f"FLAGS {_flags(mail)}".encode()
        if item == "INTERNALDATE":
            return f"INTERNALDATE {internal_date(mail.received)}".encode()
        if item == "RFC822.SIZE":
            return f"RFC822.SIZE {len(mail.raw)}".encode()
        name = _section(item)
        data = _header(mail.raw) if _SECTIONS[name] else mail.raw
        return f"{name} {{{len(data)}}}\r\n".encode() + data

    async def _store(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        if len(args) != 3:
            raise ImapBad("STORE set [+|-]FLAGS[.SILENT] (flags)")
        what = _text(args[1]).upper()
        found = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", what)
        if found is None:
            raise ImapBad(f"STORE {what} is not supported")
        how, silent = found.group(1), bool(found.group(2))
        given = args[2]
        flags = [_text(f) for f in (given if isinstance(given, list) else [given])]
        for seq, mail in self._matching(_text(args[0]), by_uid):
            self.store.mark(mail, flags, how)
            if not silent:
                uid = f" UID {mail.uid}" if by_uid else ""
                self.send(f"* {seq} FETCH (FLAGS {_flags(mail)}{uid})")
        return f"OK {'UID ' if by_uid else ''}STORE completed"

    async def _idle(self, tag: str, args: list[Arg], by_uid: bool) -> str:
        assert self.user is not None
        self.send("+ idling")
        await self.writer.drain()
        stop = self.store.watch(self.user, lambda count: self.send(f"* {count} EXISTS"))
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    raise ConnectionResetError("the client left while idling")
                if line.strip().upper() == b"DONE":
                    return "OK IDLE terminated"
                self.send("* BAD expected DONE")
        finally:
            stop()


# -- both servers ----------------------------------------------------------------------------


class LocalMail:
    """SMTP and IMAP on 127.0.0.1, on free ports, over one :class:`MailStore`. ``accounts``:
    the IMAP logins (address → password); SMTP takes mail from anyone on this machine."""

    def __init__(self, store: MailStore, accounts: dict[str, str]) -> None:
        self.store = store
        self.accounts = {address.lower(): password for address, password in accounts.items()}
        self.smtp_port = 0
        self.imap_port = 0
        self._servers: list[asyncio.Server] = []
        self._sessions: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _Inbound(self.store)
        smtp = await loop.create_server(
            lambda: SMTP(handler, hostname="mail.sandbox.test", ident="e-Comet sandbox SMTP"),
            HOST,
            0,
        )
        imap = await asyncio.start_server(self._imap_client, HOST, 0, limit=MAX_LINE)
        self._servers = [smtp, imap]
        self.smtp_port = smtp.sockets[0].getsockname()[1]
        self.imap_port = imap.sockets[0].getsockname()[1]

    async def _imap_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions[task] = writer
        try:
            await ImapSession(self.store, self.accounts, reader, writer).run()
        finally:
            self._sessions.pop(task, None)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        # Closing a client's connection ends its session (cancelling the task instead would
        # make asyncio's stream callback log the cancellation as an error).
        for writer in list(self._sessions.values()):
            writer.close()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=5)
        self._servers = []
