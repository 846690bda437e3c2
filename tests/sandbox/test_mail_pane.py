"""The sandbox's customer who writes by e-mail: her mail goes through the sandbox's own SMTP
server to the support mailbox, the real bot reads it over IMAP (bot/channels/mail), and what
staff answer comes back into her mailbox as replies in her thread, with working Solved links.

The mail server itself (bot/sandbox/mailbox.py) is tested in process first, with the IMAP
client and the commands the bot's watcher uses; then the whole sandbox through its HTTP API, and
once in a browser."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import struct
import time
import urllib.error
import urllib.request
import zlib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aioimaplib
import aiosmtplib
import pytest
from playwright.sync_api import Page, expect

from bot.sandbox.mailbox import LocalMail, MailStore
from tests.sandbox.conftest import Sandbox, call
from tests.sandbox.ui import NUMBER, Ui
from tests.waiting import eventually_sync

OLGA = 4001
ALICE = 1001
SVETLANA = 2001
STAFF_CHAT_ID = -1001000000001
TAKEN = "$EcometTaken"


def png(width: int = 48, height: int = 32) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes((200, 60, 60)) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------ the mail server alone


def _mail(subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Olga Smirnova <olga@example.com>"
    message["To"] = "support@e-comet.example"
    message["Subject"] = subject
    message.set_content(body)
    return message


async def test_the_mail_server_speaks_what_the_bots_watcher_needs() -> None:
    changes: list[int] = []
    store = MailStore(clock=time.time, on_change=lambda: changes.append(1))
    server = LocalMail(store, {"support@e-comet.example": "right"})
    await server.start()
    imap = aioimaplib.IMAP4(host="127.0.0.1", port=server.imap_port, timeout=10)
    try:
        await aiosmtplib.send(
            _mail("First", "one"), hostname="127.0.0.1", port=server.smtp_port, timeout=10
        )
        # A mail to a customer lands in the customer's own mailbox, not in the desk's.
        answer = _mail("Re: First", "two")
        answer.replace_header("To", "olga@example.com")
        await aiosmtplib.send(answer, hostname="127.0.0.1", port=server.smtp_port, timeout=10)
        assert [m.raw.count(b"one") for m in store.folder("support@e-comet.example").mails] == [1]
        assert len(store.folder("olga@example.com").mails) == 1

        await imap.wait_hello_from_server()
        refused = await imap.login("support@e-comet.example", "wrong")
        assert refused.result == "NO"
        assert (await imap.login("support@e-comet.example", "right")).result == "OK"
        assert (await imap.select("INBOX")).result == "OK"
        assert imap.has_capability("IDLE")

        # What MailWatcher.sweep does: search, fetch without marking read, mark taken.
        found = await imap.uid_search("UNKEYWORD", TAKEN, charset=None)
        assert found.result == "OK"
        assert found.lines[0].split() == [b"1"]
        fetched = await imap.uid("fetch", "1", "(BODY.PEEK[])")
        [raw] = [bytes(line) for line in fetched.lines if isinstance(line, bytearray)]
        assert raw == store.folder("support@e-comet.example").mails[0].raw
        assert b"Subject: First\r\n" in raw
        stored = await imap.uid("store", "1", "+FLAGS", f"({TAKEN})")
        assert stored.result == "OK"
        mail = store.folder("support@e-comet.example").mails[0]
        assert mail.flags == [TAKEN]  # PEEK left it unread
        assert (await imap.uid_search("UNKEYWORD", TAKEN, charset=None)).lines[0] == b""

        # IDLE: a new mail is announced at once.
        idle = await imap.idle_start(timeout=10)
        await aiosmtplib.send(
            _mail("Second", "three"), hostname="127.0.0.1", port=server.smtp_port, timeout=10
        )
        pushed = await imap.wait_server_push(timeout=10)
        assert b"2 EXISTS" in pushed
        imap.idle_done()
        assert (await asyncio.wait_for(idle, 10)).result == "OK"
        assert (await imap.uid_search("UNKEYWORD", TAKEN, charset=None)).lines[0] == b"2"
        assert changes, "the page was never told of a change"
    finally:
        await imap.logout()
        await server.stop()


async def test_the_imap_server_reads_commands_across_reads_and_refuses_the_unknown() -> None:
    store = MailStore(clock=time.time)
    store.deliver("support@e-comet.example", b"Subject: x\n\nbody\n")
    server = LocalMail(store, {"support@e-comet.example": 'pa ss"word'})
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.imap_port)

    async def answer(tag: bytes) -> list[bytes]:
        lines: list[bytes] = []
        while not lines or not lines[-1].startswith(tag + b" "):
            lines.append(await asyncio.wait_for(reader.readline(), 10))
        return lines

    try:
        assert (await reader.readline()).startswith(b"* OK")
        # One command in three writes, with a quoted password holding a space and a quote.
        for piece in (b"a1 LOG", b'IN support@e-comet.example "pa ss\\"wo', b'rd"\r\n'):
            writer.write(piece)
            await writer.drain()
        assert (await answer(b"a1"))[-1].startswith(b"a1 OK")
        writer.write(b"a2 SELECT INBOX\r\na3 FETCH 1 (FLAGS BODY[])\r\na4 FROBNICATE\r\n")
        assert b"1 EXISTS" in b"".join(await answer(b"a2"))
        fetched = b"".join(await answer(b"a3"))
        assert b"BODY[] {" in fetched
        assert b"\\Seen" in fetched  # BODY[] without PEEK reads the mail
        assert store.folder("support@e-comet.example").mails[0].raw == b"Subject: x\r\n\r\nbody\r\n"
        assert (await answer(b"a4"))[-1].startswith(b"a4 BAD")
        writer.write(b"a5 UID SEARCH SEEN\r\na6 LOGOUT\r\n")
        assert b"* SEARCH 1\r\n" in await answer(b"a5")
        assert (await answer(b"a6"))[0].startswith(b"* BYE")
    finally:
        writer.close()
        await server.stop()


def test_the_mailboxes_are_kept_as_json_and_come_back() -> None:
    clock = iter(range(1_000, 2_000))
    store = MailStore(clock=lambda: float(next(clock)))
    store.deliver("olga@example.com", b"Subject: a\r\n\r\n\xff binary\r\n")
    kept = store.deliver("support@e-comet.example", b"Subject: b\r\n\r\nb\r\n")
    store.mark(kept, [TAKEN])
    state = json.loads(json.dumps(store.snapshot()))
    again = MailStore(clock=time.time)
    again.restore(state)
    assert again.snapshot() == store.snapshot()
    assert again.folder("support@e-comet.example").uid_next == 2
    for broken in ({"folders": [{"address": "x"}]}, {"folders": "no"}, [], {"uid_validity": 1}):
        with pytest.raises((ValueError, KeyError, TypeError)):
            again.restore(broken)
    assert again.snapshot() == store.snapshot()


# ------------------------------------------------------------------ the sandbox's HTTP API


def send_mail(
    sandbox: Sandbox, fields: dict[str, Any], files: tuple[tuple[str, str, bytes], ...] = ()
) -> dict[str, Any]:
    """What the pane's form posts: multipart, with the page's header."""
    boundary = secrets.token_hex(12)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for filename, mime, content in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(
        sandbox.base.rstrip("/") + "/api/mail/send",
        data=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Sandbox": "1"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return dict(json.loads(response.read()))


def inbox(sandbox: Sandbox, folder: str = "INBOX") -> list[dict[str, Any]]:
    status, box = call(sandbox, f"/api/mail?person={OLGA}")
    assert status == 200, box
    return list(box["folders"][folder])


def read(sandbox: Sandbox, uid: int, folder: str = "INBOX") -> dict[str, Any]:
    """One mail with its text, links, attachments and thread headers."""
    status, message = call(sandbox, f"/api/mail/message?person={OLGA}&folder={folder}&uid={uid}")
    assert status == 200, message
    return dict(message)


def wait_mail(sandbox: Sandbox, subject: str, *, with_links: bool = False) -> dict[str, Any]:
    """The newest mail in Olga's inbox with ``subject`` (and links, if asked), once it came."""

    def found() -> dict[str, Any] | None:
        for item in inbox(sandbox):
            if item["subject"] == subject:
                message = read(sandbox, item["uid"])
                if message["links"] or not with_links:
                    return message
        return None

    return eventually_sync(
        found,
        lambda: f"no mail {subject!r}: {[m['subject'] for m in inbox(sandbox)]}",
        within=20,
        every=0.1,
    )


def topic_messages(sandbox: Sandbox, thread: int) -> list[dict[str, Any]]:
    status, view = call(
        sandbox, f"/api/view?person={SVETLANA}&chat={STAFF_CHAT_ID}&thread={thread}"
    )
    assert status == 200, view
    assert view["thread"] == thread
    return list(view["messages"])


def wait_topic(sandbox: Sandbox, thread: int, predicate, what: str) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        messages = topic_messages(sandbox, thread)
        return messages if predicate(messages) else None

    return eventually_sync(
        found,
        lambda: f"{what}: {[m.get('text', '')[:60] for m in topic_messages(sandbox, thread)]}",
        within=20,
        every=0.1,
    )


def press(sandbox: Sandbox, message: dict[str, Any], label: str) -> str:
    button = next(b for row in message["keyboard"] for b in row if label in b["text"])
    status, pressed = call(
        sandbox,
        "/api/press",
        {
            "person": SVETLANA,
            "chat": STAFF_CHAT_ID,
            "message_id": message["id"],
            "data": button["data"],
        },
    )
    assert status == 200, pressed
    return str(call(sandbox, f"/api/answer/{pressed['query_id']}")[1]["text"])


def open_link(url: str, method: str = "GET") -> str:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=15) as response:
        return str(response.read().decode())


def test_a_mail_from_the_pane_is_answered_from_the_topic_and_solved_by_its_link(
    sandbox: Sandbox,
) -> None:
    status, world = call(sandbox, "/api/world")
    assert status == 200
    [olga] = [p for p in world["people"] if p["id"] == OLGA]
    assert olga["mail"] == "olga@example.com"
    assert olga["role"] == "customer"

    sent = send_mail(
        sandbox,
        {
            "person": OLGA,
            "subject": "Cannot export the report",
            "text": "Hello,\nthe export button does nothing. My account is 12345678.\n\nOlga",
        },
        (
            ("screen.png", "image/png", png()),
            ("notes.html", "text/html", b"<script>alert(1)</script>"),
        ),
    )
    assert sent["folder"] == "Sent"
    [mine] = inbox(sandbox, "Sent")
    first = read(sandbox, mine["uid"], "Sent")
    picture, notes = first["attachments"]
    assert (picture["name"], picture["image"], notes["name"], notes["image"]) == (
        "screen.png",
        True,
        "notes.html",
        False,
    )
    # As the chats' files: a picture is shown, anything else is only a download.
    with urllib.request.urlopen(sandbox.base.rstrip("/") + picture["url"], timeout=15) as shown:
        assert shown.headers["Content-Type"] == "image/png"
        assert shown.read() == png()
    with urllib.request.urlopen(sandbox.base.rstrip("/") + notes["url"], timeout=15) as kept:
        assert kept.headers["Content-Type"] == "application/octet-stream"
        assert kept.headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in kept.headers["Content-Security-Policy"]

    # The bot took it from the support mailbox: a ticket, its ✉️ card and the screenshot.
    ack = wait_mail(sandbox, "[#1] Cannot export the report")
    assert ack["in_reply_to"] == first["message_id"]
    assert "#1" in ack["text"]
    [topic] = eventually_sync(
        lambda: [
            c
            for c in call(sandbox, f"/api/view?person={SVETLANA}")[1]["chats"]
            if c["kind"] == "topic" and "#1" in c["title"]
        ],
        "no topic for #1",
        within=20,
        every=0.1,
    )
    thread = topic["thread"]
    messages = wait_topic(
        sandbox, thread, lambda ms: any(m.get("photo") for m in ms), "no screenshot in the topic"
    )
    card = next(m for m in messages if m.get("keyboard") and "olga@example.com" in m["text"])
    assert "✉️" in card["text"]
    assert "12345678" in card["text"]

    # Staff answer in the topic: it reaches Olga as a reply in her thread.
    status, _ = call(
        sandbox,
        "/api/send",
        {
            "person": SVETLANA,
            "chat": STAFF_CHAT_ID,
            "thread": thread,
            "text": "Please try again: we fixed the export.",
        },
    )
    assert status == 200
    answer = wait_mail(sandbox, "Re: [#1] Cannot export the report")
    assert "we fixed the export" in answer["text"]
    assert answer["in_reply_to"] == first["message_id"]
    assert answer["from_address"] == "support@e-comet.example"

    # She replies from the pane, quoting as mail clients do: staff see only her new words.
    send_mail(
        sandbox,
        {
            "person": OLGA,
            "subject": "Re: [#1] Cannot export the report",
            "text": "It still does nothing for me.\n\n"
            "On 03.12.2026 10:00, e-Comet Support <support@e-comet.example> wrote:\n"
            "> Please try again: we fixed the export.\n",
            "reply_folder": "INBOX",
            "reply_uid": answer["uid"],
        },
    )
    messages = wait_topic(
        sandbox,
        thread,
        lambda ms: any("still does nothing" in (m.get("text") or "") for m in ms),
        "the reply did not reach the topic",
    )
    relayed = next(m for m in messages if "still does nothing" in (m.get("text") or ""))
    assert "wrote:" not in relayed["text"]
    assert "Please try again" not in relayed["text"]
    assert (
        len(
            [
                c
                for c in call(sandbox, f"/api/view?person={SVETLANA}")[1]["chats"]
                if c["kind"] == "topic"
            ]
        )
        == 1
    )

    # Staff resolve with their last answer: the mail carries Solved / Not solved links to the
    # bot's own pages, and the link closes the ticket.
    card = next(m for m in topic_messages(sandbox, thread) if m["id"] == card["id"])
    press(sandbox, card, "Решено")
    prompt = wait_topic(
        sandbox,
        thread,
        lambda ms: any("Ответ — моё последнее" in str(m.get("keyboard")) for m in ms),
        "no resolve prompt",
    )[-1]
    press(sandbox, prompt, "последнее сообщение")
    question = wait_mail(sandbox, "Re: [#1] Cannot export the report", with_links=True)
    links = {link["text"]: link["url"] for link in question["links"]}
    solved = next(url for text, url in links.items() if "Solved" in text and "Not" not in text)
    assert re.match(r"^http://127\.0\.0\.1:\d+/mail/1/solved\?", solved), solved
    assert "Is your problem solved?" in open_link(solved)  # a look changes nothing
    assert "closed" in open_link(solved, "POST")
    wait_topic(
        sandbox,
        thread,
        lambda ms: any("Закрыт" in (m.get("text") or "") for m in ms if m["id"] == card["id"]),
        "the card did not follow the ticket",
    )


def test_the_pane_refuses_what_a_mail_client_would_not_send(sandbox: Sandbox) -> None:
    assert call(sandbox, "/api/mail/send", {"person": OLGA, "subject": " ", "text": " "}) == (
        400,
        {"error": "empty mail"},
    )
    # Olga has no Telegram chats, and Telegram people have no mailbox here.
    status, refused = call(sandbox, "/api/send", {"person": OLGA, "text": "hi"})
    assert status == 400
    assert "e-mail" in refused["error"]
    assert call(sandbox, f"/api/view?person={OLGA}")[0] == 400
    assert call(sandbox, f"/api/mail?person={ALICE}")[0] == 400
    assert call(sandbox, f"/api/mail/message?person={OLGA}&folder=Trash&uid=1")[0] == 400
    assert call(sandbox, f"/api/mail/message?person={OLGA}&folder=INBOX&uid=99")[0] == 400
    assert inbox(sandbox) == []
    assert inbox(sandbox, "Sent") == []


def test_kept_mailboxes_come_back_with_the_desk(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.sqlite3"
    first = Sandbox(tmp_path, "--db", str(database))
    try:
        send_mail(first, {"person": OLGA, "subject": "Invoice is wrong", "text": "Twice billed."})
        ack = wait_mail(first, "[#1] Invoice is wrong")
        assert call(
            first, "/api/mail/seen", {"person": OLGA, "folder": "INBOX", "uid": ack["uid"]}
        ) == (200, {"ok": True})
    finally:
        assert first.stop() == 0, first.log()
    second = Sandbox(tmp_path, "--db", str(database))
    try:
        [kept] = inbox(second)
        assert kept["subject"] == "[#1] Invoice is wrong"
        assert kept["seen"] is True
        # The desk goes on from there: a new mail is a new ticket, the old one is not re-read.
        send_mail(second, {"person": OLGA, "subject": "Another one", "text": "Export again."})
        wait_mail(second, "[#2] Another one")
        assert [m["subject"] for m in inbox(second)] == [
            "[#2] Another one",
            "[#1] Invoice is wrong",
        ]
    finally:
        assert second.stop() == 0, second.log()


# ------------------------------------------------------------------ in a browser


def be_olga(page: Page) -> None:
    option = page.locator("#person option", has_text="Olga")
    page.select_option("#person", value=option.get_attribute("value"))
    expect(page.locator("#mail-pane")).to_be_visible()
    expect(page.locator("#chats")).to_be_hidden()


def test_olga_writes_staff_answer_and_the_answer_arrives_as_a_reply(page: Page) -> None:
    ui = Ui(page)
    be_olga(page)
    expect(page.locator("#mail-hint")).to_contain_text("support@e-comet.example")
    expect(page.locator("#mail-list")).to_contain_text("No mail here yet.")
    page.locator("#mail-new").click()
    expect(page.locator("#mail-to")).to_have_text("e-Comet Support <support@e-comet.example>")
    page.locator("#mail-subject").fill("Cannot export the report")
    page.locator("#mail-body").fill("Hello,\nthe export button does nothing.\n\nOlga")
    page.locator("#mail-send").click()
    expect(page.locator("#mail-compose")).to_be_hidden()

    # The desk's acknowledgement arrives, unread, with the ticket's number.
    ack = page.locator("#mail-list .mail.unseen", has_text="Cannot export the report").first
    expect(ack).to_be_visible()
    found = NUMBER.search(ack.inner_text())
    assert found is not None
    number = int(found.group(1))

    # Staff see the ✉️ card in the ticket's topic and answer there.
    ui.be("Светлана")
    ui.open_chat(f"#{number}")
    card = ui.card(number)
    expect(card).to_contain_text("✉️")
    expect(card).to_contain_text("olga@example.com")
    ui.type("Please try again: we fixed the export.")

    # Olga finds the answer as a reply in her thread and answers it in turn.
    be_olga(page)
    reply = page.locator("#mail-list .mail", has_text=f"Re: [#{number}]").first
    expect(reply).to_be_visible()
    reply.click()
    reader = page.locator("#mail-reader")
    expect(reader.locator(".mail-text")).to_contain_text("we fixed the export")
    expect(reader.locator(".headers")).to_contain_text("support@e-comet.example")
    expect(page.locator("#mail-list .mail.unseen", has_text=f"Re: [#{number}]")).to_have_count(0)
    page.locator("#mail-reply").click()
    expect(page.locator("#mail-subject")).to_have_value(f"Re: [#{number}] Cannot export the report")
    expect(page.locator("#mail-body")).to_have_value(re.compile(r"wrote:\n> Please try again"))
    page.locator("#mail-body").press("Home")
    page.locator("#mail-body").type("It works now, thank you!")
    page.locator("#mail-send").click()
    expect(page.locator("#mail-compose")).to_be_hidden()
    page.locator("#mail-pane [data-folder=Sent]").click()
    expect(page.locator("#mail-list .mail")).to_have_count(2)

    # The reply reaches the same topic with her new words only.
    ui.be("Светлана")
    ui.open_chat(f"#{number}")
    relayed = ui.message("It works now, thank you!")
    expect(relayed).not_to_contain_text("wrote:")
