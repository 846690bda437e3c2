"""Drives a real aiogram Bot against the emulated Telegram Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    ReplyParameters,
    Update,
)
from aiohttp import web

from bot.emulator import FakeTelegram, FakeUser
from tests.waiting import eventually

TOKEN = "123456:TEST-TOKEN"
STAFF = -1001234567890
FORUM = -1009876543210


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    f = FakeTelegram(token=TOKEN)
    await f.start()
    yield f
    await f.stop()


@pytest_asyncio.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    assert fake.url
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    b = Bot(TOKEN, session=session)
    yield b
    await close_bot(b)


async def close_bot(b: Bot) -> None:
    # aiogram's session.close() sleeps 250 ms for TLS shutdown; plain HTTP doesn't need it.
    inner = getattr(b.session, "_session", None)
    if inner is not None:
        await inner.close()
    await b.session.close()


@pytest.fixture
def alice(fake: FakeTelegram) -> FakeUser:
    u = fake.add_user(1001, "Alice", username="alice", language_code="en")
    fake.send_command(u, "/start")
    return u


def kb(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d)] for t, d in buttons]
    )


async def raw_call(
    fake: FakeTelegram, method: str, data: dict[str, Any] | None = None, token: str = TOKEN
) -> tuple[int, dict[str, Any]]:
    url = f"{fake.url}/bot{token}/{method}"
    async with aiohttp.ClientSession() as s, s.post(url, data=data or {}) as r:
        return r.status, await r.json()


# ------------------------------------------------------------------------------ basics


async def test_get_me_and_auth(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456
    assert me.is_bot
    assert me.username == "ecomet_support_bot"
    assert fake.bot_user["id"] == 123456
    status, body = await raw_call(fake, "getMe", token="123456:WRONG")
    assert status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    bad = Bot(
        "123456:WRONG", session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url or ""))
    )
    with pytest.raises(TelegramUnauthorizedError):
        await bad.get_me()
    await close_bot(bad)


async def test_unknown_method_and_case_insensitive(fake: FakeTelegram, bot: Bot) -> None:
    class Frobnicate(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "frobnicate"

    with pytest.raises(TelegramNotFound, match="Not Found"):
        await bot(Frobnicate())
    status, body = await raw_call(fake, "frobnicate")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    status, body = await raw_call(fake, "GETME")
    assert status == 200
    assert body["result"]["id"] == 123456
    # GET with a query string and JSON bodies are accepted too
    async with aiohttp.ClientSession() as s, s.get(f"{fake.url}/bot{TOKEN}/getMe") as r:
        assert (await r.json())["ok"] is True


async def test_missing_required_and_wrong_types(fake: FakeTelegram, alice: FakeUser) -> None:
    status, body = await raw_call(fake, "sendMessage", {"text": "hi"})
    assert (status, body["description"]) == (400, "Bad Request: chat_id is empty")
    status, body = await raw_call(fake, "sendMessage", {"chat_id": str(alice.id)})
    assert body["description"] == "Bad Request: message text is empty"
    status, body = await raw_call(fake, "createForumTopic", {"chat_id": "1"})
    assert body["description"] == "Bad Request: topic name is empty"
    status, body = await raw_call(fake, "getChatMember", {"chat_id": "1", "user_id": "abc"})
    assert status == 400
    assert "user_id" in body["description"]
    status, body = await raw_call(
        fake, "sendMessage", {"chat_id": str(alice.id), "text": "x", "reply_markup": "{oops"}
    )
    assert body["description"] == "Bad Request: can't parse reply keyboard markup JSON object"
    # unknown extra parameters are ignored; JSON bodies work
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{fake.url}/bot{TOKEN}/sendMessage",
            json={"chat_id": alice.id, "text": "json", "bogus": 1},
        ) as r,
    ):
        body = await r.json()
    assert body["ok"]
    assert body["result"]["text"] == "json"


# ------------------------------------------------------------------------------ sending


async def test_send_html_entities(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    sent = await bot.send_message(
        alice.id,
        "<b>Ticket #12</b> &amp; <i>co</i> &lt;tag&gt; 😀 <code>x</code>",
        parse_mode="HTML",
        reply_markup=kb(("Close", "close:12")),
    )
    assert sent.text == "Ticket #12 & co <tag> 😀 x"
    types = [(e.type, e.offset, e.length) for e in sent.entities or []]
    assert ("bold", 0, 10) in types
    assert ("italic", 13, 2) in types
    assert ("code", 25, 1) in types  # 😀 counts as 2 UTF-16 units
    assert not any(t[0] == "hashtag" for t in types)  # "#12" is not a hashtag (digits only)
    stored = await fake.next_message(alice.id)
    assert fake.text_of(stored) == "Ticket #12 & co <tag> 😀 x"
    assert fake.buttons(stored) == ["Close"]
    assert stored["message_id"] == sent.message_id
    # escaped user content arrives literally
    sent = await bot.send_message(alice.id, "&lt;b&gt;not bold&lt;/b&gt; &amp;", parse_mode="HTML")
    assert sent.text == "<b>not bold</b> &"
    assert not sent.entities


async def test_html_errors_and_limits(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "foo" at byte offset 6'):
        await bot.send_message(alice.id, "hello <foo>x</foo>", parse_mode="HTML")
    with pytest.raises(
        TelegramBadRequest, match='Can\'t find end tag corresponding to start tag "b"'
    ):
        await bot.send_message(alice.id, "<b>open", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(alice.id, "1 < 2", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(alice.id, "a" * 4097)
    await bot.send_message(alice.id, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")  # fits
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(alice.id, "😀" * 2049)  # 4098 UTF-16 units
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(alice.id, "x", reply_markup=kb(("b", "x" * 65)))
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed"):
        await bot.send_message(
            alice.id,
            "x",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="t")]]),
        )
    with pytest.raises(TelegramBadRequest, match="Character '!' is reserved"):
        await bot.send_message(alice.id, "Hi!", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(alice.id, BufferedInputFile(b"img", "a.jpg"), caption="c" * 1025)
    # none of the failures produced a message
    assert len(fake.bot_messages(alice.id)) == 1


async def test_chat_errors(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "x")
    bob = fake.add_user(1002, "Bob")
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await bot.send_message(bob.id, "x")
    fake.block(alice)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(alice.id, "x")
    fake.unblock(alice)
    await bot.send_message(alice.id, "back")
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(alice.id, "x", reply_parameters=ReplyParameters(message_id=999))
    ok = await bot.send_message(
        alice.id,
        "x",
        reply_parameters=ReplyParameters(message_id=999, allow_sending_without_reply=True),
    )
    assert ok.reply_to_message is None
    user_msg = fake.send_text(alice, "question")
    reply = await bot.send_message(alice.id, "answer", reply_to_message_id=user_msg["message_id"])
    assert reply.reply_to_message
    assert reply.reply_to_message.text == "question"


async def test_fault_injection(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    fake.fail_next("sendMessage", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as exc:
        await bot.send_message(alice.id, "x")
    assert exc.value.retry_after == 7
    assert "retry after 7" in exc.value.message
    fake.fail_next("sendmessage", error_code=500)
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.send_message(alice.id, "x")
    fake.fail_next("sendMessage", error_code=502, chat_id=999)  # other chat: not triggered
    await bot.send_message(alice.id, "ok")
    fake.drop_connection_next("sendMessage")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(alice.id, "dropped")
    assert [fake.text_of(m) for m in fake.bot_messages(alice.id)] == ["ok"]
    assert [c.ok for c in fake.calls if c.method == "sendMessage"] == [False, False, True, False]


async def test_rate_limit_group_burst(bot: Bot) -> None:
    """A group takes about one message a second: a burst is refused (tests/emulator/
    test_flood_limits.py drives the clock through the rest of the group's limits)."""
    fake = FakeTelegram(token=TOKEN, enforce_limits=True)
    await fake.start()
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url or "")))
    try:
        fake.add_group(STAFF, "Support staff")
        await b.send_message(STAFF, "m0")
        with pytest.raises(TelegramRetryAfter) as exc:
            await b.send_message(STAFF, "one too many")
        assert exc.value.retry_after == 1
        assert len(fake.bot_messages(STAFF)) == 1
        assert fake.rate_limited == fake.rate_limited_in(STAFF) == 1
    finally:
        await close_bot(b)
        await fake.stop()


# ------------------------------------------------------------------------------ updates


async def _long_poll_waits(fake: FakeTelegram) -> None:
    """Until a getUpdates with a timeout has reached the server and waits there."""
    await eventually(lambda: fake._poller is not None, "the long poll never reached the server")


async def test_updates_polling(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == 1
    assert isinstance(updates[0], Update)
    start = updates[0].message
    assert start
    assert start.text == "/start"
    assert start.entities
    assert start.entities[0].type == "bot_command"
    fake.send_text(alice, "hello")
    updates = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
    assert [u.message.text for u in updates if u.message] == ["hello"]
    last = updates[-1].update_id
    # long poll returns as soon as an update arrives
    task = asyncio.create_task(bot.get_updates(offset=last + 1, timeout=5))
    await _long_poll_waits(fake)
    assert not task.done()
    fake.send_text(alice, "later")
    got = await asyncio.wait_for(task, 2)
    assert got[0].message
    assert got[0].message.text == "later"
    # offset confirms: the confirmed ones are gone
    await bot.get_updates(offset=got[0].update_id + 1, timeout=0)
    assert fake.updates == []


async def test_get_updates_conflict_and_webhook(fake: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await _long_poll_waits(fake)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 2)
    assert await second == []
    await bot.set_webhook("https://example.com/hook")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert info.url == "https://example.com/hook"
    await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == []


async def test_a_webhook_gets_several_chats_at_once_and_each_chat_in_order(
    fake: FakeTelegram, bot: Bot
) -> None:
    """Telegram posts up to ``max_connections`` updates at once (here when a test asks for
    it, ``webhook_connections``), never two of one chat at once, one chat's in order."""
    posted: list[tuple[int, str]] = []
    in_flight: dict[int, int] = {}
    overlaps: list[int] = []
    most = 0
    three_at_once = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal most
        message = (await request.json())["message"]
        chat = message["chat"]["id"]
        in_flight[chat] = in_flight.get(chat, 0) + 1
        if in_flight[chat] > 1:
            overlaps.append(chat)
        most = max(most, sum(in_flight.values()))
        if most >= 3:
            three_at_once.set()
        try:
            # Held until three chats' updates are being posted at once (then no more holding).
            await asyncio.wait_for(three_at_once.wait(), 5)
        finally:
            in_flight[chat] -= 1
        posted.append((chat, message["text"]))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        fake.allow_http_webhooks = True
        fake.webhook_connections = 4
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", max_connections=4)
        people = [fake.add_user(7000 + n, f"P{n}") for n in range(3)]
        for n in range(4):
            for person in people:
                fake.send_text(person, f"{person.first_name}-{n}")
        await fake.wait_updates_consumed(timeout=20)
        assert most >= 3 and not overlaps, (most, overlaps)
        for person in people:
            mine = [text for chat, text in posted if chat == person.id]
            assert mine == [f"{person.first_name}-{n}" for n in range(4)]
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


async def test_allowed_updates_and_limit(fake: FakeTelegram, bot: Bot) -> None:
    u = fake.add_user(1003, "Carol")
    await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    m = fake.send_text(u, "ignored")  # not in allowed_updates: never queued
    assert fake.updates == []
    await bot.get_updates(timeout=0, allowed_updates=[])  # back to default
    for i in range(3):
        fake.send_text(u, f"t{i}")
    got = await bot.get_updates(limit=2, timeout=0)
    assert [x.message.text for x in got if x.message] == ["t0", "t1"]
    assert m["text"] == "ignored"


# ------------------------------------------------------------------------------ callbacks


async def test_press_and_answer(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    sent = await bot.send_message(
        alice.id, "Rate us", reply_markup=kb(("👍 Good", "rate:5"), ("Bad", "rate:1"))
    )
    msg = await fake.next_message(alice.id)
    with pytest.raises(AssertionError, match="available"):
        fake.press(alice, msg, "Excellent")
    qid = fake.press(alice, msg, "Good")
    updates = await bot.get_updates(timeout=0)
    cq = updates[-1].callback_query
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):  # 0-200 characters
        await bot.answer_callback_query(qid, text="x" * 201)
    assert cq
    assert cq.id == qid
    assert cq.data == "rate:5"
    assert cq.from_user.id == alice.id
    assert isinstance(cq.message, Message)
    assert cq.message.message_id == sent.message_id
    assert await bot.answer_callback_query(qid, text="Thanks!", show_alert=True)
    assert (await fake.wait_for_answer(qid, 1))["show_alert"] is True
    assert fake.answers[qid]["text"] == "Thanks!"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(qid)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("12345")
    forged = fake.press_data(alice, alice.id, sent.message_id, "admin:delete_all")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert updates[-1].callback_query
    assert updates[-1].callback_query.data == "admin:delete_all"
    assert forged == updates[-1].callback_query.id


# ------------------------------------------------------------------------------ edits/deletes


async def test_edits(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    sent = await bot.send_message(alice.id, "v1", reply_markup=kb(("A", "a")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            text="v1", chat_id=alice.id, message_id=sent.message_id, reply_markup=kb(("A", "a"))
        )
    edited = await bot.edit_message_text(
        text="<b>v2</b>", chat_id=alice.id, message_id=sent.message_id, parse_mode="HTML"
    )
    assert isinstance(edited, Message)
    assert edited.text == "v2"
    assert edited.edit_date
    assert edited.reply_markup is None  # no reply_markup in the edit removes the keyboard
    await bot.edit_message_reply_markup(
        chat_id=alice.id, message_id=sent.message_id, reply_markup=kb(("B", "b"))
    )
    assert fake.buttons(fake.message(alice.id, sent.message_id)) == ["B"]
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=alice.id, message_id=sent.message_id, reply_markup=kb(("B", "b"))
        )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=alice.id, message_id=9999)
    user_msg = fake.send_text(alice, "mine")
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text(text="x", chat_id=alice.id, message_id=user_msg["message_id"])
    photo = await bot.send_photo(
        alice.id, BufferedInputFile(b"\xff\xd8img", "p.jpg"), caption="old"
    )
    with pytest.raises(TelegramBadRequest, match="no text in the message"):
        await bot.edit_message_text(text="x", chat_id=alice.id, message_id=photo.message_id)
    cap = await bot.edit_message_caption(
        chat_id=alice.id, message_id=photo.message_id, caption="<i>new</i>", parse_mode="HTML"
    )
    assert isinstance(cap, Message)
    assert cap.caption == "new"
    # user edits → edited_message update
    fake.edit_text(alice, user_msg, "mine, edited")
    ups = await bot.get_updates(timeout=0)
    assert ups[-1].edited_message
    assert ups[-1].edited_message.text == "mine, edited"
    assert await bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(alice.id, sent.message_id)
    assert sent.message_id not in [m["message_id"] for m in fake.messages(alice.id)]


# ------------------------------------------------------------------------------ media


async def test_media_copy_and_albums(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    fake.add_group(STAFF, "Support staff", members=[alice])
    album = fake.send_album(alice, n=3, caption="three pics")
    assert len({m["media_group_id"] for m in album}) == 1
    ids = [m["message_id"] for m in album]
    copied = await bot.copy_messages(STAFF, from_chat_id=alice.id, message_ids=ids)
    assert len(copied) == 3
    staff_msgs = fake.messages(STAFF)
    assert len({m["media_group_id"] for m in staff_msgs}) == 1
    assert staff_msgs[0]["media_group_id"] != album[0]["media_group_id"]
    assert staff_msgs[0]["caption"] == "three pics"
    assert staff_msgs[0]["photo"][-1]["file_id"] == album[0]["photo"][-1]["file_id"]
    # One request posts its messages at one moment (pace checks count requests, not messages).
    state = fake.chats[STAFF]
    assert len({state.messages[c.message_id].sent_at for c in copied}) == 1
    doc = fake.send_document(alice, file_name="log.txt", caption="see log")
    mid = await bot.copy_message(
        STAFF,
        alice.id,
        doc["message_id"],
        caption="<b>from Alice</b>",
        parse_mode="HTML",
        reply_markup=kb(("Reply", "r:1")),
    )
    copy_msg = fake.message(STAFF, mid.message_id)
    assert copy_msg["document"]["file_name"] == "log.txt"
    assert copy_msg["caption"] == "from Alice"
    assert fake.buttons(copy_msg) == ["Reply"]
    with pytest.raises(TelegramBadRequest, match="message to copy not found"):
        await bot.copy_message(STAFF, alice.id, 9999)
    # resend by file_id, download via getFile
    file_id = album[0]["photo"][-1]["file_id"]
    resent = await bot.send_photo(STAFF, file_id, caption="again")
    assert resent.photo
    assert resent.photo[-1].file_id == file_id
    f = await bot.get_file(doc["document"]["file_id"])
    assert f.file_path
    data = await bot.download_file(f.file_path)
    assert data is not None
    assert data.read() == b"fake content of log.txt\n"
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(STAFF, "AgACAgIAAxkBAAIBogus")
    group = await bot.send_media_group(
        alice.id,
        media=[
            InputMediaPhoto(
                media=BufferedInputFile(b"\xff\xd8a", "a.jpg"),
                caption="<b>a</b>",
                parse_mode="HTML",
            ),
            InputMediaPhoto(media=file_id),
        ],
    )
    assert len(group) == 2
    assert group[0].media_group_id == group[1].media_group_id
    assert group[0].caption == "a"
    assert group[0].caption_entities
    fwd = await bot.forward_message(STAFF, alice.id, doc["message_id"])
    assert fwd.forward_origin is not None
    assert fwd.document is not None
    sticker = fake.send_sticker(alice)
    voice = fake.send_voice(alice)
    assert sticker["sticker"]["file_id"]
    assert voice["voice"]["duration"] == 3
    ups = await bot.get_updates(timeout=0)
    assert ups[-1].message
    assert ups[-1].message.voice
    assert ups[-2].message
    assert ups[-2].message.sticker


# ------------------------------------------------------------------------------ groups/forums


async def test_forum_topics(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    fake.add_group(STAFF, "Plain group")
    with pytest.raises(TelegramBadRequest, match="the chat is not a forum"):
        await bot.create_forum_topic(STAFF, "x")
    fake.add_group(
        -1005555, "No rights forum", is_forum=True, bot_rights={"can_manage_topics": False}
    )
    with pytest.raises(TelegramBadRequest, match="not enough rights to create a topic"):
        await bot.create_forum_topic(-1005555, "x")
    fake.add_group(FORUM, "Tickets", is_forum=True, members=[alice])
    topic = await bot.create_forum_topic(FORUM, "Ticket #1 — Alice")
    tid = topic.message_thread_id
    sent = await bot.send_message(FORUM, "new ticket", message_thread_id=tid)
    assert sent.message_thread_id == tid
    assert sent.is_topic_message
    assert sent.reply_to_message
    assert sent.reply_to_message.forum_topic_created
    msg = await fake.next_message(FORUM, thread_id=tid)
    assert msg["message_id"] == sent.message_id
    staff_reply = fake.send_text(alice, "staff answer", chat_id=FORUM, thread_id=tid)
    assert staff_reply["message_thread_id"] == tid
    assert await bot.edit_forum_topic(FORUM, tid, name="Ticket #1 — closed")
    assert await bot.close_forum_topic(FORUM, tid)
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.close_forum_topic(FORUM, tid)
    assert await bot.reopen_forum_topic(FORUM, tid)
    assert await bot.delete_forum_topic(FORUM, tid)
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(FORUM, "late", message_thread_id=tid)
    await fake.expect_silence(FORUM, within=0.05)


async def test_chat_info_members_commands(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    bob = fake.add_user(1002, "Bob")
    fake.add_group(STAFF, "Support staff", members=[bob], admins=[alice])
    chat = await bot.get_chat(STAFF)
    assert chat.title == "Support staff"
    assert chat.type == "supergroup"
    assert (await bot.get_chat(alice.id)).first_name == "Alice"
    assert isinstance(await bot.get_chat_member(STAFF, alice.id), ChatMemberAdministrator)
    assert isinstance(await bot.get_chat_member(STAFF, bob.id), ChatMemberMember)
    carol = fake.add_user(1003, "Carol")
    assert isinstance(await bot.get_chat_member(STAFF, carol.id), ChatMemberLeft)
    admins = await bot.get_chat_administrators(STAFF)
    assert {a.user.id for a in admins} == {alice.id, 123456}
    assert await bot.send_chat_action(STAFF, "typing")
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(STAFF, "dancing")
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="tickets", description="Open tickets")],
        scope=BotCommandScopeChat(chat_id=STAFF),
        language_code="ru",
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    scoped = await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=STAFF), language_code="ru")
    assert [c.command for c in scoped] == ["tickets"]
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Cmd", description="x")])
    # group message from a member arrives as an update (bot is admin → sees everything)
    fake.send_text(bob, "hi staff", chat_id=STAFF)
    ups = await bot.get_updates(timeout=0)
    assert ups[-1].message
    assert ups[-1].message.chat.id == STAFF
    with pytest.raises(AssertionError, match="not a member"):
        fake.send_text(carol, "intruder", chat_id=STAFF)


async def test_next_message_timeout_and_wait_for_call(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    with pytest.raises(TimeoutError, match="sent no new message"):
        await fake.next_message(alice.id, timeout=0.05)

    async def later() -> None:
        # Runs once the test is suspended inside next_message: the message comes after.
        await bot.send_message(alice.id, "first")
        await bot.send_message(alice.id, "second")

    task = asyncio.create_task(later())
    assert fake.text_of(await fake.next_message(alice.id, timeout=2)) == "first"
    assert fake.text_of(await fake.next_message(alice.id, timeout=2)) == "second"
    call = await fake.wait_for_call(
        "SENDMESSAGE", lambda c: c.params["text"] == "second", timeout=1
    )
    assert call.ok
    assert call.params["chat_id"] == alice.id
    await task
    # concurrency: many requests at once keep message ids unique and monotonic
    results = await asyncio.gather(*(bot.send_message(alice.id, f"c{i}") for i in range(30)))
    ids = sorted(m.message_id for m in results)
    assert ids == list(range(ids[0], ids[0] + 30))


async def test_markdown_uploads_privacy(fake: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    legacy = await bot.send_message(alice.id, "*Hi*, dots. are fine!", parse_mode="Markdown")
    assert legacy.text == "Hi, dots. are fine!"
    assert legacy.entities
    assert legacy.entities[0].type == "bold"
    v2 = await bot.send_message(alice.id, "*Hi* \\!", parse_mode="MarkdownV2")
    assert v2.text == "Hi !"
    doc = await bot.send_document(alice.id, BufferedInputFile(b"report body", "report.csv"))
    assert doc.document is not None
    assert doc.document.file_name == "report.csv"
    f = await bot.get_file(doc.document.file_id)
    got = await bot.download_file(f.file_path or "")
    assert got is not None
    assert got.read() == b"report body"
    # a non-admin bot in privacy mode only sees commands/replies/mentions in groups
    bob = fake.add_user(1002, "Bob")
    fake.add_group(-100777, "Customers", members=[bob], bot_is_admin=False)
    await bot.get_updates(offset=-1, timeout=0)
    await bot.get_updates(offset=fake.updates[-1]["update_id"] + 1, timeout=0)
    fake.send_text(bob, "just chatting", chat_id=-100777)
    fake.send_command(bob, "/help", chat_id=-100777)
    ups = await bot.get_updates(timeout=0)
    assert [u.message.text for u in ups if u.message] == ["/help"]


async def test_private_rate_limit() -> None:
    fake = FakeTelegram(token=TOKEN, enforce_limits=True)
    await fake.start()
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url or "")))
    try:
        u = fake.add_user(1001, "Alice", started=True)
        for i in range(3):
            await b.send_message(u.id, f"burst {i}")
        with pytest.raises(TelegramRetryAfter) as exc:
            await b.send_message(u.id, "too fast")
        assert exc.value.retry_after == 1
    finally:
        await close_bot(b)
        await fake.stop()


# ------------------------------------------------------------------------------ sandbox support


async def test_the_command_menu_a_user_sees_follows_telegrams_scope_order(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    from aiogram.types import BotCommandScopeAllPrivateChats

    boris = fake.add_user(1002, "Борис", language_code="ru")
    carol = fake.add_user(1003, "Carol", language_code="de")
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="new", description="New request")],
        scope=BotCommandScopeAllPrivateChats(),
    )
    await bot.set_my_commands(
        [BotCommand(command="new", description="Новая заявка")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="ru",
    )
    await bot.set_my_commands(
        [BotCommand(command="language", description="Language")],
        scope=BotCommandScopeChat(chat_id=alice.id),
    )
    assert [c["command"] for c in fake.commands_for(alice.id)] == ["language"]
    assert fake.commands_for(boris.id)[0]["description"] == "Новая заявка"
    assert fake.commands_for(carol.id)[0]["description"] == "New request"
    fake.add_group(STAFF, "Staff", members=[carol])
    assert [c["command"] for c in fake.commands_for(carol.id, STAFF)] == ["start"]


async def test_reactions_are_kept_beside_the_message(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    from aiogram.types import ReactionTypeEmoji

    message = fake.send_text(alice, "a note")
    assert await bot.set_message_reaction(
        alice.id, message["message_id"], [ReactionTypeEmoji(emoji="✍")]
    )
    assert fake.reactions[(alice.id, message["message_id"])] == ["✍"]
    assert "reactions" not in fake.message(alice.id, message["message_id"])
    assert await bot.set_message_reaction(alice.id, message["message_id"], [])
    assert (alice.id, message["message_id"]) not in fake.reactions
    with pytest.raises(TelegramBadRequest, match="message to react not found"):
        await bot.set_message_reaction(alice.id, 999, [ReactionTypeEmoji(emoji="✍")])


async def test_a_snapshot_brings_the_world_back_and_new_ids_go_on(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    import pickle

    await bot.send_message(alice.id, "kept")
    fake.send_text(alice, "pending update")
    state = pickle.loads(pickle.dumps(fake.snapshot()))
    before = [u["update_id"] for u in fake.updates]

    again = FakeTelegram(token=TOKEN)
    again.restore(state)
    assert [m.get("text") for m in again.messages(alice.id)] == [
        m.get("text") for m in fake.messages(alice.id)
    ]
    assert [u["update_id"] for u in again.updates] == before
    later = again.send_text(alice, "after the restart")
    assert later["message_id"] > fake.messages(alice.id)[-1]["message_id"]
    assert again.updates[-1]["update_id"] > before[-1]
