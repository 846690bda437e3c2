"""The mailbox watcher against a real Dovecot (tests/mailserver.py): every mail taken in once,
marked only after its unit of work, a failed one tried again, an unreadable one kept and told,
new mail seen at once through IDLE."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bot.channels.mail import watcher as watching
from bot.channels.mail.watcher import TAKEN, MailWatcher
from bot.config import parse_mail_url
from bot.services.mail import Accepted
from tests.waiting import eventually


class Desk:
    """Records what the watcher hands the desk (the desk itself is proven in tests/e2e)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.accepted: list[str] = []
        self.told: list[str] = []
        self.fail_first = fail_first

    async def accept(self, session, mail) -> Accepted:
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("the database hiccuped")
        self.accepted.append(mail.subject)
        return Accepted("ticket", len(self.accepted))

    async def unreadable(self, session, key: str, sender: str, error: str) -> None:
        self.told.append(error)


def _mail(customer: str, support: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = customer
    message["To"] = support
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="customers.test")
    message.set_content("words")
    return message


@contextlib.asynccontextmanager
async def watching_with(mail, desk: Desk) -> AsyncIterator[MailWatcher]:
    engine = create_async_engine("sqlite+aiosqlite://")
    watcher = MailWatcher(
        server=parse_mail_url(mail.support_imap_url, "imap"),
        desk=desk,  # type: ignore[arg-type]
        session_factory=async_sessionmaker(engine),
        poll_interval=30,  # only IDLE can make it look again in time
    )
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        watcher.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()


async def test_mails_are_taken_once_and_marked_and_new_ones_seen_at_once(mail) -> None:
    customer = mail.customer("ann")
    mail.send(_mail(customer, mail.support, "before start"), sender=customer, to=[mail.support])
    await mail.wait_for_mail(mail.support, 1)
    desk = Desk()
    async with watching_with(mail, desk):
        await eventually(lambda: desk.accepted == ["before start"], lambda: str(desk.accepted))
        # Sent while the watcher idles: IDLE brings it well before the 30 s poll would.
        mail.send(_mail(customer, mail.support, "while idle"), sender=customer, to=[mail.support])
        await eventually(
            lambda: desk.accepted == ["before start", "while idle"], lambda: str(desk.accepted)
        )
        await eventually(lambda: all(TAKEN in f for f in mail.flags(mail.support)), "not marked")
    # Looked at again (a restart): nothing is taken twice.
    again = Desk()
    async with watching_with(mail, again):
        mail.send(_mail(customer, mail.support, "after"), sender=customer, to=[mail.support])
        await eventually(lambda: again.accepted == ["after"], lambda: str(again.accepted))
        # Marked once its ticket is committed, a moment after the desk took it: waited
        # for while the watcher still runs (stopped in between, it would leave the mark
        # to the next start, which finds the mail already taken by its Message-ID).
        await eventually(
            lambda: [TAKEN in f for f in mail.flags(mail.support)] == [True, True, True],
            lambda: f"not all marked: {mail.flags(mail.support)}",
        )
    # \Seen is the people's: the watcher never set it.
    assert not any("\\Seen" in f for f in mail.flags(mail.support))


async def test_a_mail_that_fails_is_not_marked_and_is_tried_again(
    mail, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watching, "RETRY", 0.2)
    customer = mail.customer("bob")
    mail.send(_mail(customer, mail.support, "flaky"), sender=customer, to=[mail.support])
    await mail.wait_for_mail(mail.support, 1)
    desk = Desk(fail_first=2)
    async with watching_with(mail, desk):
        await eventually(lambda: desk.accepted == ["flaky"], "never taken in after failures")
        await eventually(lambda: TAKEN in mail.flags(mail.support)[0], "not marked")


async def test_an_unreadable_mail_is_kept_and_staff_told(mail) -> None:
    customer = mail.customer("eve")
    mail.send(b"this is not a mail at all\r\n", sender=customer, to=[mail.support])
    mail.send(_mail(customer, mail.support, "readable"), sender=customer, to=[mail.support])
    await mail.wait_for_mail(mail.support, 2)
    desk = Desk()
    async with watching_with(mail, desk):
        await eventually(lambda: desk.accepted == ["readable"], lambda: str(desk.accepted))
        await eventually(lambda: len(desk.told) == 1, "the unreadable mail was not told")
    # Still in the mailbox, marked: a person can look at it; it is not read again.
    assert len(mail.inbox(mail.support)) == 2
