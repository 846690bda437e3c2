"""The support mailbox, watched: every new mail is taken in by ``MailDesk`` (one unit of work
each), then marked in the mailbox so that it is not read again.

IMAP IDLE when the server offers it (the server says at once that mail arrived), else a look
every ``MAIL_POLL_INTERVAL`` seconds. Mails are found by a keyword of ours rather than by UID:
a keyword survives a restart, a UIDVALIDITY change (the server renumbered the mailbox) and a
person reading the mailbox too (``\\Seen`` is theirs; we fetch with ``BODY.PEEK``).

Nothing lost, nothing doubled: a mail is marked only after its unit of work committed, and a
mail taken in before (a crash between the commit and the mark, a second instance reading the
same mailbox) is recognised by its Message-ID and only marked. A mail that fails to be taken in
is tried again on the next look; a mail that cannot be parsed is kept in the mailbox and staff
are told (``MailDesk.unreadable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import ssl
from collections.abc import Callable
from typing import Any

import aioimaplib
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import MailServer
from bot.db.uow import transaction
from bot.mail.parse import MailParseError, parse_mail
from bot.services.mail import MailDesk

log = logging.getLogger(__name__)

TAKEN = "$EcometTaken"  # the keyword of a mail the desk has taken in
IDLE_RENEW = 25 * 60.0  # servers may drop an IDLE after 30 minutes (RFC 2177)
RECONNECT_MAX = 60.0
# Bigger mails are kept in the mailbox and staff told (parsing one takes seconds and memory).
MAX_MAIL = 40 * 1024 * 1024
RETRY = 5.0  # seconds before a mail that failed to be taken in is tried again
_UID = re.compile(rb"UID (\d+)")


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """Notes that the server announced mail (``* n EXISTS``). aioimaplib drops such an
    announcement when it comes inside another command's answer ("ignored untagged
    response"): a mail delivered while the last search ran is announced with that search's
    empty result, and IDLE, started next, does not announce it again. The sweep looks once
    more instead of idling on a mail already there (hooked here because aioimaplib offers
    no callback for untagged responses)."""

    announced = False

    def _untagged_response(self, line: bytes) -> Any:
        if line.endswith(b" EXISTS"):
            self.announced = True
        return super()._untagged_response(line)


class _Imap(aioimaplib.IMAP4):  # type: ignore[misc]
    protocol: _Protocol

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


class MailWatcher:
    def __init__(
        self,
        *,
        server: MailServer,
        desk: MailDesk,
        session_factory: async_sessionmaker[AsyncSession],
        poll_interval: float,
        i18n: I18n | None = None,
        after_commit: Callable[[], None] = lambda: None,
        tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
    ) -> None:
        self.server = server
        self.desk = desk
        self.session_factory = session_factory
        self.poll_interval = poll_interval
        self.i18n = i18n  # the use cases word refusals with gettext, as inside an update
        self.after_commit = after_commit  # wakes the sender: an acknowledgement is waiting
        self.tls_context = tls_context
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        delay = 1.0
        log.info("watching the mailbox %s@%s", self.server.user, self.server.host)
        while not self._stopping.is_set():
            try:
                await self._session()
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the mailbox must keep being watched
                log.warning("mailbox: %s: %s; again in %.0f s", type(exc).__name__, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, RECONNECT_MAX)

    def stop(self) -> None:
        """Finish the mail in hand and stop (the task may also just be cancelled: a mail is
        marked only after its unit of work committed, so nothing is lost either way)."""
        self._stopping.set()

    async def _connect(self) -> _Imap:
        server = self.server
        tls = self.tls_context() if server.tls == "tls" else None
        imap = _Imap(host=server.host, port=server.port, ssl_context=tls)
        await imap.wait_hello_from_server()
        response = await imap.login(server.user, server.password)
        if response.result != "OK":
            raise ConnectionError(f"login refused: {_text(response.lines)}")
        response = await imap.select(server.folder)
        if response.result != "OK":
            raise ConnectionError(f"no folder {server.folder}: {_text(response.lines)}")
        return imap

    async def _session(self) -> None:
        imap = await self._connect()
        try:
            idle = imap.has_capability("IDLE")
            while not self._stopping.is_set():
                left = await self.sweep(imap)
                if self._stopping.is_set():
                    break
                if idle and not left:
                    await self._idle(imap, min(IDLE_RENEW, max(self.poll_interval, 1.0)))
                else:
                    # No IDLE, or a mail that failed to be taken in: look again soon (IDLE
                    # would wake only for new mail).
                    wait = self.poll_interval if not left else min(self.poll_interval, RETRY)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), wait)
        finally:
            with contextlib.suppress(Exception):
                await imap.logout()

    async def _idle(self, imap: _Imap, timeout: float) -> None:
        """Wait until the server says something changed (new mail), or ``timeout`` (a look
        every MAIL_POLL_INTERVAL all the same: a safety net under IDLE)."""
        waiting = await imap.idle_start(timeout=timeout)
        try:
            while not self._stopping.is_set():
                push = await imap.wait_server_push(timeout=timeout + 5)
                if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                lines = push if isinstance(push, list) else getattr(push, "lines", [])
                if any(b"EXISTS" in line for line in lines if isinstance(line, bytes)):
                    break
        finally:
            if imap.has_pending_idle():
                imap.idle_done()
            await asyncio.wait_for(waiting, 10)

    async def sweep(self, imap: _Imap) -> int:
        """Take in every mail not yet taken; returns how many are left for another try.

        The search is repeated until it finds nothing new: a mail that arrived while others
        were taken in was announced in the middle of those commands (aioimaplib drops such
        announcements), and IDLE would not announce it again."""
        failed: set[bytes] = set()
        while not self._stopping.is_set():
            # Only an announcement with this search's answer or after it is news: the
            # search itself sees every mail delivered before it.
            imap.protocol.announced = False
            response = await imap.uid_search("UNKEYWORD", TAKEN, charset=None)
            if response.result != "OK":
                raise ConnectionError(f"search failed: {_text(response.lines)}")
            uids = [u for line in response.lines[:1] for u in line.split() if u.isdigit()]
            fresh = [uid for uid in uids if uid not in failed]
            if not fresh and not imap.protocol.announced:
                break
            for uid in fresh:
                if self._stopping.is_set():
                    break
                raw = await self._fetch(imap, uid.decode())
                if raw is not None and await self._take_in(raw, uid.decode()):
                    await imap.uid("store", uid.decode(), "+FLAGS", f"({TAKEN})")
                else:
                    failed.add(uid)
        return len(failed)

    async def _fetch(self, imap: _Imap, uid: str) -> bytes | None:
        response = await imap.uid("fetch", uid, "(BODY.PEEK[])")
        if response.result != "OK":
            log.warning("mail %s could not be fetched: %s", uid, _text(response.lines))
            return None
        # The literal (the mail itself) is the one bytearray among the response's lines.
        literals = [bytes(line) for line in response.lines if isinstance(line, bytearray)]
        return max(literals, key=len) if literals else None

    async def _take_in(self, raw: bytes, uid: str) -> bool:
        """One mail, one unit of work; False: not taken (it is tried again next time)."""
        try:
            if len(raw) > MAX_MAIL:
                raise MailParseError(f"{len(raw) // 1024 // 1024} MB, more than the desk reads")
            mail = parse_mail(raw)
        except MailParseError as exc:
            key = "<unparsed-" + hashlib.sha256(raw).hexdigest()[:32] + ">"
            sender = _header(raw, b"from")
            log.warning("mail %s from %s cannot be read: %s", uid, sender, exc)
            async with transaction(self.session_factory) as uow:
                await self.desk.unreadable(uow.session, key, sender, str(exc))
            self.after_commit()
            return True
        try:
            with contextlib.ExitStack() as stack:
                if self.i18n is not None:
                    stack.enter_context(self.i18n.context())
                async with transaction(self.session_factory) as uow:
                    accepted = await self.desk.accept(uow.session, mail)
        except Exception:
            log.exception(
                "mail %s (%s) could not be taken in; tried again later", uid, mail.message_id
            )
            return False
        log.info(
            "mail %s from %s: %s %s",
            mail.message_id,
            mail.sender,
            accepted.outcome,
            f"#{accepted.ticket_number}" if accepted.ticket_number else "",
        )
        self.after_commit()
        return True


def _text(lines: list[bytes]) -> str:
    return b" ".join(line for line in lines if isinstance(line, bytes)).decode(errors="replace")


def _header(raw: bytes, name: bytes) -> str:
    """One header's raw value, for a mail the parser could not read."""
    for line in raw.split(b"\n", 200)[:200]:
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].strip().decode(errors="replace")[:200]
    return ""
