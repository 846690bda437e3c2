"""The e-mail channel end to end (SPEC §10): the real bot process, the fake Bot API, and real
mail servers (Dovecot for IMAP, an SMTP server delivering into it; tests/mailserver.py).

A customer mails the support address → a card in the staff group, marked ✉️ → staff answer in
the ticket's topic → the answer reaches the customer's mailbox as a reply in their thread → the
customer's reply reaches the same topic, without the quoted history. Robots' mail creates
nothing, and a restart in the middle loses and doubles nothing."""

from __future__ import annotations

import base64
import html
import re
import socket
from email.message import EmailMessage
from email.utils import make_msgid

import aiohttp
import pytest

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.conftest import BotFactory
from tests.e2e.harness import STAFF_CHAT_ID, BotProcess
from tests.waiting import eventually

TAKEN = "$EcometTaken"
# A real 1×1 PNG: what a mail client attaches as a screenshot.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def _mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    name: str = "Alice Walker",
    reply_to: EmailMessage | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    if reply_to is not None:
        message["In-Reply-To"] = reply_to["Message-ID"]
        message["References"] = " ".join(
            filter(None, [reply_to.get("References"), reply_to["Message-ID"]])
        )
    message.set_content(body)  # first: it drops the Content-* headers set before it
    for key, value in (headers or {}).items():
        message[key] = value
    return message


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, message
    return str(part.get_content())


async def _staff_post(fake: FakeTelegram, containing: str) -> dict:
    """The bot's message in the staff group that contains ``containing``, once it is there."""

    def found() -> dict | None:
        for message in reversed(fake.bot_messages(STAFF_CHAT_ID)):
            if containing in fake.text_of(message):
                return message
        return None

    return await eventually(
        found,
        lambda: (
            f"no staff post with {containing!r}: "
            + " | ".join(fake.text_of(m)[:80] for m in fake.bot_messages(STAFF_CHAT_ID))
        ),
        within=30,
    )


async def _start(start_bot: BotFactory, mail, support: str, **env: str) -> BotProcess:
    return await start_bot(
        MAIL_IMAP_URL=mail.support_imap_url,
        MAIL_SMTP_URL=mail.smtp_url,
        MAIL_FROM=f"e-Comet Support <{support}>",
        MAIL_POLL_INTERVAL="0.5",
        **env,
    )


@pytest.fixture
def addresses(mail) -> tuple[str, str]:
    return mail.support, mail.customer("alice")


async def test_a_mail_becomes_a_ticket_answered_from_the_topic_and_replied_to(
    fake: FakeTelegram, anna: FakeUser, start_bot: BotFactory, mail, addresses
) -> None:
    support, customer = addresses
    fake.groups[STAFF_CHAT_ID].is_forum = True
    bot = await _start(start_bot, mail, support)
    first = _mail(
        customer,
        support,
        "Cannot pay the invoice",
        "Hello,\nthe payment page fails with error 500 <script>alert(1)</script>.\n"
        "My account is 12345678.\n\n-- \nAlice Walker\nACME Ltd.",
    )
    mail.send(first, sender=customer, to=[support])

    # Staff see a card marked as e-mail, with the address, the account and the words.
    card = await _staff_post(fake, "Cannot pay the invoice")
    text = fake.text_of(card)
    assert "✉️" in text and customer in text, text
    assert "12345678" in text and "error 500" in text, text
    assert "ACME Ltd." not in text, text  # the signature is not the request
    thread = card["message_thread_id"]
    # The customer is acknowledged in their thread, with the number in the subject.
    [ack] = await mail.wait_for_mail(customer, 1)
    assert ack["Subject"].startswith("[#1] "), ack["Subject"]
    assert ack["In-Reply-To"] == first["Message-ID"]
    assert "#1" in _body(ack)

    # Staff answer in the topic: it reaches the mailbox as a reply in the same thread.
    await bot.settled()
    fake.send_text(
        anna, "Please try again: we fixed the gateway.", chat_id=STAFF_CHAT_ID, thread_id=thread
    )
    answer = (await mail.wait_for_mail(customer, 2))[1]
    assert "we fixed the gateway" in _body(answer), _body(answer)
    assert answer["Subject"] == "Re: [#1] Cannot pay the invoice"
    assert answer["In-Reply-To"] == first["Message-ID"]
    assert first["Message-ID"] in answer["References"]
    assert "Auto-Submitted" not in answer  # a person's answer, not a robot's

    # The customer replies from their mail client, quoting: staff see only the new words.
    reply = _mail(
        customer,
        support,
        "Re: [#1] Cannot pay the invoice",
        "Still failing, same error.\n\nOn Wed, 2 Dec 2026 at 10:00, e-Comet Support wrote:\n"
        "> Please try again: we fixed the gateway.\n",
        reply_to=answer,
    )
    mail.send(reply, sender=customer, to=[support])
    relayed = await _staff_post(fake, "Still failing")
    assert relayed["message_thread_id"] == thread
    assert "Please try again" not in fake.text_of(relayed)
    # One ticket, and every mail in the support mailbox marked as taken in.
    await bot.settled()
    assert bot.query("SELECT number FROM tickets") == [(1,)]
    assert all(TAKEN in flags for flags in mail.flags(support)), mail.flags(support)


async def test_robots_mail_and_the_desks_own_create_nothing(
    fake: FakeTelegram, start_bot: BotFactory, mail, addresses
) -> None:
    support, customer = addresses
    bot = await _start(start_bot, mail, support)
    auto = _mail(
        customer,
        support,
        "Out of Office: Cannot pay",
        "I am away until Monday.",
        headers={"Auto-Submitted": "auto-replied"},
    )
    bulk = _mail(customer, support, "Newsletter", "Our news", headers={"Precedence": "bulk"})
    own = _mail(support, support, "Re: [#5] Something", "a loop", name="e-Comet Support")
    for message in (auto, bulk, own):
        mail.send(message, sender=str(message["From"].addresses[0].addr_spec), to=[support])
    # A person's mail after them: once it is a ticket, the robots' were looked at before it.
    person = _mail(customer, support, "A real question", "How do I change my tariff plan?")
    mail.send(person, sender=customer, to=[support])
    await _staff_post(fake, "A real question")
    await bot.settled()
    assert bot.query("SELECT count(*) FROM tickets") == [(1,)]
    outcomes = dict(bot.query("SELECT outcome, count(*) FROM mail_messages GROUP BY outcome"))
    assert outcomes.get("noise") == 3, outcomes
    # Nobody answered the robots: the customer got one acknowledgement, for the question.
    assert len(await mail.wait_for_mail(customer, 1)) == 1
    assert all(TAKEN in flags for flags in mail.flags(support))


async def test_a_restart_loses_and_doubles_nothing(
    fake: FakeTelegram, start_bot: BotFactory, mail, addresses
) -> None:
    support, customer = addresses
    bot = await _start(start_bot, mail, support)
    mail.send(
        _mail(customer, support, "First problem", "The app crashes at start."),
        sender=customer,
        to=[support],
    )
    await _staff_post(fake, "First problem")
    await bot.settled()
    bot.kill()
    # While the bot is down, two more mails arrive; one of them is a reply to the first.
    [ack] = await mail.wait_for_mail(customer, 1)
    mail.send(
        _mail(customer, support, "Second problem", "Invoices are not shown."),
        sender=customer,
        to=[support],
    )
    mail.send(
        _mail(
            customer, support, "Re: [#1] First problem", "It crashes on Android 14.", reply_to=ack
        ),
        sender=customer,
        to=[support],
    )
    await bot.start()
    await _staff_post(fake, "Second problem")
    await _staff_post(fake, "Android 14")
    await bot.settled()
    assert bot.query("SELECT number, topic FROM tickets ORDER BY number") == [
        (1, "First problem"),
        (2, "Second problem"),
    ]
    # Each customer got one acknowledgement per ticket, none twice.
    mails = await mail.wait_for_mail(customer, 2)
    subjects = sorted(str(m["Subject"]) for m in mails)
    assert subjects == ["[#1] First problem", "[#2] Second problem"], subjects


def _links(message: EmailMessage) -> dict[str, str]:
    """The links of a mail's HTML part, by their text."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None, message
    return {
        html.unescape(text): html.unescape(href)
        for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', str(part.get_content()))
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _start_with_links(start_bot: BotFactory, mail, support: str, **env: str) -> BotProcess:
    """The bot with its web app on a free port as PUBLIC_URL: the links in mails work."""
    port = _free_port()
    return await _start(
        start_bot,
        mail,
        support,
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        **env,
    )


async def _resolved(
    fake: FakeTelegram, anna: FakeUser, bot: BotProcess, mail, support: str, customer: str
) -> tuple[dict, EmailMessage]:
    """A mailed request, answered and resolved by staff through the Resolve prompt; returns
    the card and the mail with the answer and the question."""
    mail.send(
        _mail(
            customer,
            support,
            "Cannot log in",
            "The login page hangs.",
            headers={"Content-Language": "en"},
        ),
        sender=customer,
        to=[support],
    )
    card = await _staff_post(fake, "Cannot log in")
    await bot.settled()
    fake.press(anna, card, "Решено")
    prompt = await _staff_post(fake, "Ответьте на это сообщение")
    await bot.settled()
    fake.send_text(
        anna, "Clear the cache and log in again.", chat_id=STAFF_CHAT_ID, reply_to=prompt
    )
    mails = await mail.wait_for_mail(customer, 3)  # the acknowledgement, answer, question
    question = next(m for m in mails if _links(m))
    return card, question


async def test_resolved_by_mail_the_customer_confirms_with_a_link(
    fake: FakeTelegram, anna: FakeUser, start_bot: BotFactory, mail, addresses
) -> None:
    support, customer = addresses
    bot = await _start_with_links(start_bot, mail, support)
    _, question = await _resolved(fake, anna, bot, mail, support, customer)
    links = _links(question)
    assert set(links) >= {"👍 Solved", "👎 Not solved"}, links
    solved = links["👍 Solved"]
    async with aiohttp.ClientSession() as http:
        # Opening the link (as a mail scanner does) changes nothing: it asks.
        async with http.get(solved) as page:
            assert page.status == 200
            assert "Is your problem solved?" in await page.text()
            # The signed address never leaves as a referrer; the page cannot be framed.
            assert page.headers["Referrer-Policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert bot.query("SELECT status FROM tickets") == [("resolved",)]
        # A link changed to another ticket, or to the other answer, is refused.
        async with http.get(solved.replace("/solved?", "/not-solved?")) as forged:
            assert forged.status == 403
        # The customer presses the page's button: the ticket closes, confirmed.
        async with http.post(solved) as done:
            assert "Thank you! The request is closed." in await done.text()
        # The same link again only says what became of the request.
        async with http.post(solved) as again:
            assert "nothing more to do" in await again.text()
    assert bot.query("SELECT status, close_reason FROM tickets") == [("closed", "confirmed")]
    await _staff_post(fake, "Закрыт")  # the card followed
    # The customer is told it is closed and asked for a rating, by mail with links.
    mails = await mail.wait_for_mail(customer, 5)
    assert any("⭐⭐⭐⭐⭐" in _links(m) for m in mails[3:]), [m["Subject"] for m in mails]


async def test_not_solved_with_a_reason_reopens_and_silence_closes_by_itself(
    fake: FakeTelegram, anna: FakeUser, start_bot: BotFactory, mail, addresses
) -> None:
    support, customer = addresses
    bot = await _start_with_links(
        start_bot,
        mail,
        support,
        CONFIRM_REMINDER_AFTER="3",
        AUTO_CLOSE_AFTER="6",
        SCHEDULER_INTERVAL="0.3",
    )
    card, question = await _resolved(fake, anna, bot, mail, support, customer)
    not_solved = _links(question)["👎 Not solved"]
    async with aiohttp.ClientSession() as http:
        async with http.post(not_solved, data={"reason": ""}) as empty:
            assert "Please write what still goes wrong." in await empty.text()
        async with http.post(not_solved, data={"reason": "Still <hangs> after that."}) as done:
            assert "back in work" in await done.text()
    assert bot.query("SELECT status, reopened_count FROM tickets") == [("in_progress", 1)]
    await _staff_post(fake, "Still <hangs>")  # the reason reached staff
    # Resolved again and left without an answer: reminded, then closed by itself.
    first_prompt = await _staff_post(fake, "Ответьте на это сообщение")
    fake.press(anna, card, "Решено")
    prompt = await eventually(
        lambda: next(
            (
                m
                for m in fake.bot_messages(STAFF_CHAT_ID)
                if "Ответьте на это сообщение" in fake.text_of(m)
                and m["message_id"] > first_prompt["message_id"]
            ),
            None,
        ),
        "no second Resolve prompt",
    )
    await bot.settled()
    fake.press(anna, prompt, "последнее сообщение")
    closed = "SELECT status, close_reason FROM tickets"
    await eventually(
        lambda: bot.query(closed) == [("closed", "auto")],
        lambda: f"not closed by itself: {bot.query(closed)}",
        within=30,
    )
    # The first resolution's link does nothing to the second.
    async with aiohttp.ClientSession() as http, http.post(_links(question)["👍 Solved"]) as old:
        assert "nothing more to do" in await old.text()


BOUNCE = """From: Mail Delivery System <MAILER-DAEMON@{domain}>
To: {support}
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@{domain}>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0"

--b0
Content-Type: text/plain

The mail you sent could not be delivered to nobody@{domain}.
--b0
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.{domain}
Final-Recipient: rfc822; nobody@{domain}
Action: failed
Status: 5.1.1
--b0--
"""


async def test_files_both_ways_a_bounce_and_a_reply_that_says_not_solved(
    fake: FakeTelegram, anna: FakeUser, start_bot: BotFactory, mail, addresses
) -> None:
    support, customer = addresses
    fake.groups[STAFF_CHAT_ID].is_forum = True
    bot = await _start(start_bot, mail, support)
    # A mail with a screenshot and a log file: staff see both in the ticket's topic.
    first = _mail(customer, support, "Broken chart", "The chart on the dashboard is empty.")
    first.add_attachment(PNG, maintype="image", subtype="png", filename="chart.png")
    first.add_attachment(b"line 1\nline 2\n", maintype="text", subtype="plain", filename="app.log")
    mail.send(first, sender=customer, to=[support])
    card = await _staff_post(fake, "Broken chart")
    thread = card["message_thread_id"]

    def files_in_topic() -> list[dict]:
        return [
            m
            for m in fake.bot_messages(STAFF_CHAT_ID)
            if m.get("message_thread_id") == thread and ("photo" in m or "document" in m)
        ]

    files = await eventually(lambda: len(files_in_topic()) == 2 and files_in_topic(), "no files")
    assert {m["document"]["file_name"] for m in files if "document" in m} == {"app.log"}
    # A bounce to the support address makes nothing.
    mail.send(BOUNCE.format(domain=mail.domain, support=support).encode(), sender="", to=[support])
    # Staff answer with a photo: it is attached to the mail.
    await bot.settled()
    photo = fake.send_photo(
        anna, "Here is how it should look", chat_id=STAFF_CHAT_ID, thread_id=thread
    )
    answer = (await mail.wait_for_mail(customer, 2))[1]
    assert "Here is how it should look" in _body(answer)
    [attached] = list(answer.iter_attachments())
    assert attached.get_content_type().startswith("image/")
    assert attached.get_content() == fake.file_bytes(photo["photo"][-1]["file_id"])
    # Resolved; the customer replies "Not solved" with the reason: the ticket is back in work.
    fake.press(anna, card, "Решено")
    prompt = await _staff_post(fake, "Ответьте на это сообщение")
    await bot.settled()
    fake.press(anna, prompt, "последнее сообщение")
    question = (await mail.wait_for_mail(customer, 3))[2]
    reply = _mail(
        customer,
        support,
        f"Re: {question['Subject']}",
        "Not solved: the chart is still empty after a reload.\n\n> Is the problem solved?",
        reply_to=question,
    )
    mail.send(reply, sender=customer, to=[support])
    await _staff_post(fake, "the chart is still empty after a reload")
    await bot.settled()
    assert bot.query("SELECT status, reopened_count FROM tickets") == [("in_progress", 1)]
    outcomes = dict(bot.query("SELECT outcome, count(*) FROM mail_messages GROUP BY outcome"))
    assert outcomes.get("noise") == 1, outcomes  # the bounce
    assert bot.query("SELECT count(*) FROM tickets") == [(1,)]


async def test_a_ticket_number_in_a_strangers_subject_opens_their_own_request(
    fake: FakeTelegram, start_bot: BotFactory, mail, addresses
) -> None:
    """Anyone can write "[#1]" in a subject: only the ticket's own customer adds to it."""
    support, alice = addresses
    mallory = mail.customer("mallory")
    bot = await _start(start_bot, mail, support, MAX_OPEN_TICKETS="1")
    mail.send(
        _mail(alice, support, "Invoice question", "Where is my October invoice?"),
        sender=alice,
        to=[support],
    )
    await _staff_post(fake, "Invoice question")
    forged = _mail(
        mallory, support, "Re: [#1] Invoice question", "Send me her invoice too.", name="Mallory"
    )
    mail.send(forged, sender=mallory, to=[support])
    await _staff_post(fake, "Send me her invoice too.")
    await bot.settled()
    rows = bot.query("SELECT t.number, u.email FROM tickets t JOIN users u ON u.id = t.customer_id")
    assert sorted(rows) == [(1, alice), (2, mallory)], rows
    # Mallory's acknowledgement names her own request only; nothing of Alice's reached her.
    [ack] = await mail.wait_for_mail(mallory, 1)
    assert ack["Subject"].startswith("[#2] ")
    assert "October" not in _body(ack)
    # One open request at most (MAX_OPEN_TICKETS=1): Alice's second problem is refused by
    # mail with the list, and no ticket is opened.
    mail.send(
        _mail(alice, support, "Another problem", "The app crashes at start."),
        sender=alice,
        to=[support],
    )
    mails = await mail.wait_for_mail(alice, 2)
    assert "(#1)" in _body(mails[1]) and "не больше 1" in _body(mails[1]), _body(mails[1])
    assert bot.query("SELECT count(*) FROM tickets") == [(2,)]
