"""The mail servers the e-mail channel is tested against (tests/mailserver.py) do what the
channel's tests take for granted: mail crosses Exim into Dovecot intact, IMAP offers and pushes
IDLE, flags stick, every test has mailboxes of its own, and missing servers are reported."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.mailserver import Mail, MailServers, unavailable

ROOT = Path(__file__).resolve().parents[2]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101001820c8a20000000049454e44ae426082"
)


def customer_message(mail: Mail, sender: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Иван Петров <{sender}>"
    message["To"] = mail.support
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=f"customers.{mail.domain}")
    message.set_content(body)
    return message


async def test_a_message_crosses_smtp_into_dovecot_with_everything_intact(mail: Mail) -> None:
    sender = mail.customer("ivan")
    earlier = make_msgid(domain=mail.domain)
    subject = "Re: [#42] Не приходят показания счётчика — лицевой счёт №123456 ✉️"
    body = "Здравствуйте!\nС 1 марта показания не передаются.\nСкриншот и счёт во вложении.\n"
    message = customer_message(mail, sender, subject, body)
    message["In-Reply-To"] = earlier
    message["References"] = earlier
    message.add_alternative("<p>Здравствуйте!</p>", subtype="html")
    message.add_attachment(PNG, maintype="image", subtype="png", filename="экран.png")
    message.add_attachment(
        b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="счёт март.pdf"
    )

    mail.send(message, sender=sender, to=[mail.support])
    [got] = await mail.wait_for_mail(mail.support, 1)

    assert got["Message-ID"] == message["Message-ID"]
    assert got["In-Reply-To"] == earlier
    assert got["References"] == earlier
    assert str(got["Subject"]) == subject
    assert got["From"].addresses[0].display_name == "Иван Петров"
    assert got["From"].addresses[0].addr_spec == sender
    plain = got.get_body(preferencelist=("plain",))
    html = got.get_body(preferencelist=("html",))
    assert plain is not None and plain.get_content() == body
    assert html is not None and "<p>Здравствуйте!</p>" in html.get_content()
    attachments = {part.get_filename(): part for part in got.iter_attachments()}
    assert set(attachments) == {"экран.png", "счёт март.pdf"}
    assert attachments["экран.png"].get_content() == PNG
    assert attachments["счёт март.pdf"].get_content_type() == "application/pdf"
    assert attachments["счёт март.pdf"].get_content() == b"%PDF-1.4 ..."
    # Delivered through both servers, for the recipient it was sent to.
    assert got["Delivered-To"] == mail.support
    assert "Exim" in str(got.get_all("Received"))


async def test_mail_to_an_address_nobody_set_up_still_lands(mail: Mail) -> None:
    late = f"newcomer@customers.{mail.domain}"
    raw = (
        f"From: {mail.support}\r\nTo: {late}\r\nSubject: [#7] Ваша заявка\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nЗаявка зарегистрирована.\r\n"
    ).encode()
    # One transaction to both: once the known mailbox has it, so does the unknown one.
    mail.send(raw, sender=mail.support, to=[late, mail.support])
    await mail.wait_for_mail(mail.support, 1)

    mail.add_mailbox(late, "другой пароль")
    [got] = await mail.wait_for_mail(late, 1)
    assert str(got["Subject"]) == "[#7] Ваша заявка"
    assert got.get_content() == "Заявка зарегистрирована.\n"


def test_imap_offers_idle_and_pushes_new_mail(mail: Mail) -> None:
    assert {"IDLE", "MOVE", "UIDPLUS"} <= mail.capabilities()
    with mail.imap(mail.support) as conn:
        conn.select("INBOX")
        conn.send(b"I1 IDLE\r\n")
        assert conn.readline().startswith(b"+ ")
        sender = mail.customer()
        mail.send(
            customer_message(mail, sender, "Тест", "Тело\n"), sender=sender, to=[mail.support]
        )
        pushed = conn.readline()  # the socket's timeout (15 s) bounds the wait
        assert pushed == b"* 1 EXISTS\r\n"
        conn.send(b"DONE\r\n")
        while not (line := conn.readline()).startswith(b"I1 "):
            pass
        assert line.startswith(b"I1 OK")


async def test_flags_set_over_imap_are_read_back(mail: Mail) -> None:
    sender = mail.customer()
    for number in (1, 2):
        message = customer_message(mail, sender, f"Письмо {number}", "Текст\n")
        mail.send(message, sender=sender, to=[mail.support])
    await mail.wait_for_mail(mail.support, 2)
    # Reading the mailbox in a test marks nothing as seen: the bot's view stays as it was.
    assert mail.flags(mail.support) == [set(), set()]

    with mail.imap(mail.support) as conn:
        conn.select("INBOX")
        status, _ = conn.store("2", "+FLAGS", r"(\Seen \Flagged $Ticket42)")
        assert status == "OK"
    assert mail.flags(mail.support) == [set(), {"\\Seen", "\\Flagged", "$Ticket42"}]


SEEN_DOMAINS: set[str] = set()


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_has_mailboxes_of_its_own(mail: Mail, run: int) -> None:
    assert mail.domain not in SEEN_DOMAINS
    SEEN_DOMAINS.add(mail.domain)
    assert mail.inbox(mail.support) == []
    sender = mail.customer()
    mail.send(customer_message(mail, sender, f"Run {run}", "x\n"), sender=sender, to=[mail.support])
    got = await mail.wait_for_mail(mail.support, 1)
    assert [str(m["Subject"]) for m in got] == [f"Run {run}"]


def test_urls_and_logins(mail: Mail, mail_servers: MailServers) -> None:
    url = urlsplit(mail.support_imap_url)
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "imap",
        "127.0.0.1",
        mail.imap_port,
        "/INBOX",
    )
    assert (unquote(url.username or ""), unquote(url.password or "")) == (mail.support, "secret")
    assert urlsplit(mail_servers.smtp_url).port == mail_servers.smtp_port

    customer = mail.customer("olga")
    mail.add_mailbox(customer, "p@ss:word/ё")
    mail.add_mailbox(customer, "p@ss:word/ё")  # idempotent
    url = urlsplit(mail.imap_url(customer, "p@ss:word/ё"))
    assert unquote(url.password or "") == "p@ss:word/ё"
    with mail.imap(customer) as conn:
        assert conn.select("INBOX")[0] == "OK"

    # SMTP needs no login from loopback, but takes the mailbox's, and refuses a wrong one.
    with smtplib.SMTP(mail.host, mail.smtp_port, timeout=15) as smtp:
        assert smtp.login(mail.support, "secret")[0] == 235
    with (
        smtplib.SMTP(mail.host, mail.smtp_port, timeout=15) as smtp,
        pytest.raises(smtplib.SMTPAuthenticationError),
    ):
        smtp.login(mail.support, "wrong")


def test_missing_servers_are_named_with_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_SERVERS_EXIM", "/nonexistent/exim4")
    reason = unavailable()
    assert reason is not None
    assert "exim4 not installed" in reason and "exim4-daemon-light" in reason


@pytest.mark.parametrize(("required", "outcome"), [("", "1 skipped"), ("1", "1 error")])
def test_missing_servers_skip_the_tests_or_fail_them_where_required(
    required: str, outcome: str
) -> None:
    env = dict(os.environ, MAIL_SERVERS_DOVECOT="/nonexistent/dovecot")
    for own in ("MAIL_SERVERS_REQUIRED", "MAIL_SERVERS_EXIM"):  # the caller's settings out
        env.pop(own, None)
    if required:
        env["MAIL_SERVERS_REQUIRED"] = required
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", __file__, "-k", "flags_set"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert outcome in run.stdout, run.stdout + run.stderr
    assert "dovecot not installed (apt-get install dovecot-imapd" in run.stdout
