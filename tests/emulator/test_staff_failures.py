"""The two staff-side failures the emulator reproduces as Telegram does, seen through aiogram:
a file over the upload limit (413), and the bot removed from its group and added back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
)
from aiogram.types import (
    BufferedInputFile,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    InputMediaDocument,
    MediaUnion,
    Update,
)

from bot.emulator import FakeTelegram, FakeUser, UploadLimits

TOKEN = "123456:TEST-TOKEN"
BOT_ID = 123456
STAFF = -1001234567890
KICKED = "Forbidden: bot was kicked from the supergroup chat"
NOT_MEMBER = "Forbidden: bot is not a member of the supergroup chat"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    f = FakeTelegram(token=TOKEN)
    await f.start()
    yield f
    await f.stop()


@pytest_asyncio.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    assert fake.url
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
    yield b
    # aiogram's session.close() sleeps 250 ms for TLS shutdown; plain HTTP doesn't need it.
    inner = getattr(b.session, "_session", None)
    if inner is not None:
        await inner.close()
    await b.session.close()


@pytest.fixture
def alice(fake: FakeTelegram) -> FakeUser:
    user = fake.add_user(1001, "Alice", username="alice")
    fake.send_command(user, "/start")
    return user


@pytest.fixture
def staff(fake: FakeTelegram) -> tuple[FakeUser, FakeUser]:
    """Anna, a member of the staff group, and Boris, its administrator."""
    anna = fake.add_user(2001, "Anna")
    boris = fake.add_user(2002, "Boris")
    fake.add_group(STAFF, "Support staff", members=[anna], admins=[boris])
    return anna, boris


async def fresh_updates(bot: Bot, fake: FakeTelegram) -> list[Update]:
    """The updates queued since the last call, confirmed at once."""
    updates = await bot.get_updates(timeout=0)
    if updates:
        await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert not fake.updates
    return updates


# ------------------------------------------------------------------------------ uploads


async def test_an_upload_over_the_limit_is_refused_with_telegrams_413(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    fake.upload_limits.files = 4096
    with pytest.raises(TelegramEntityTooLarge) as caught:
        await bot.send_document(alice.id, BufferedInputFile(b"x" * 4097, "big.bin"))
    # What the bot sees: a network error by aiogram's classes, Telegram's words in it.
    assert isinstance(caught.value, TelegramNetworkError)
    assert caught.value.message == "Request Entity Too Large"
    assert str(caught.value).startswith("HTTP Client says - Request Entity Too Large")
    call = fake.calls[-1]
    assert (call.method, call.ok, call.error_code) == ("sendDocument", False, 413)
    assert call.params["chat_id"] == str(alice.id)  # what came before the file, as sent
    assert fake.bot_messages(alice.id) == []

    # The same answer on the wire: 413 with Telegram's JSON body, not an HTML page.
    form = aiohttp.FormData()
    form.add_field("chat_id", str(alice.id))
    form.add_field("document", b"y" * 5000, filename="big.bin")
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{fake.url}/bot{TOKEN}/sendDocument", data=form) as response,
    ):
        assert response.status == 413
        assert response.content_type == "application/json"
        assert await response.json() == {
            "ok": False,
            "error_code": 413,
            "description": "Request Entity Too Large",
        }

    # At the limit it goes; a long text is no upload; a file sent again by id is not either.
    sent = await bot.send_document(alice.id, BufferedInputFile(b"z" * 4096, "fits.bin"))
    await bot.send_message(alice.id, "я" * 4096)
    assert sent.document is not None
    fake.upload_limits.files = 1
    await bot.send_document(alice.id, sent.document.file_id)
    assert len(fake.bot_messages(alice.id)) == 3


async def test_the_files_of_one_request_count_together(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    fake.upload_limits = UploadLimits(files=5000)
    album: list[MediaUnion] = [
        InputMediaDocument(media=BufferedInputFile(b"a" * 2000, f"part{i}.txt")) for i in range(3)
    ]
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_media_group(alice.id, album)
    assert fake.bot_messages(alice.id) == []
    sent = await bot.send_media_group(alice.id, album[:2])
    assert len(sent) == 2


async def test_telegrams_own_limits_by_default(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    assert fake.upload_limits == UploadLimits(files=50 * 1024 * 1024, photo=10 * 1024 * 1024)
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(alice.id, BufferedInputFile(b"\0" * (50 * 1024 * 1024 + 1), "x"))
    # The refused body was read to its end: the connection serves the next call.
    await bot.send_message(alice.id, "still here")
    assert [fake.text_of(m) for m in fake.bot_messages(alice.id)] == ["still here"]


async def test_a_photo_over_its_own_limit_is_a_bad_request(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    fake.upload_limits.photo = 1000
    picture = BufferedInputFile(b"\xff\xd8" + b"p" * 1999, "shot.jpg")
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_photo(alice.id, picture)
    assert caught.value.message == (
        "Bad Request: file of size 2001 bytes is too big for a photo; "
        "the maximum size is 1000 bytes"
    )
    assert fake.bot_messages(alice.id) == []
    assert (await bot.send_document(alice.id, picture)).document is not None


# ------------------------------------------------------------------------------ membership


async def test_the_bot_removed_from_its_group_is_told_and_refused_everything(
    fake: FakeTelegram, bot: Bot, alice: FakeUser, staff: tuple[FakeUser, FakeUser]
) -> None:
    anna, boris = staff
    card = await bot.send_message(STAFF, "Ticket #1")
    relayed = fake.send_text(anna, "a question for the customer", chat_id=STAFF)
    await bot.get_updates(allowed_updates=["message", "my_chat_member", "chat_member"])
    await fresh_updates(bot, fake)

    with pytest.raises(AssertionError, match="not an administrator"):
        fake.kick_bot(STAFF, by=anna)
    fake.kick_bot(STAFF, by=boris)

    (update,) = await fresh_updates(bot, fake)  # my_chat_member only, never chat_member
    change = update.my_chat_member
    assert change is not None
    assert change.chat.id == STAFF
    assert change.from_user.id == boris.id
    assert isinstance(change.old_chat_member, ChatMemberAdministrator)
    assert isinstance(change.new_chat_member, ChatMemberBanned)
    assert change.new_chat_member.user.id == BOT_ID

    calls = [
        bot.send_message(STAFF, "hello?"),
        bot.send_document(STAFF, BufferedInputFile(b"log", "log.txt")),
        bot.edit_message_text("Ticket #1 (closed)", chat_id=STAFF, message_id=card.message_id),
        bot.delete_message(STAFF, card.message_id),
        bot.copy_message(alice.id, STAFF, relayed["message_id"]),
        bot.get_chat(STAFF),
        bot.get_chat_member(STAFF, BOT_ID),
        bot.get_chat_administrators(STAFF),
        bot.send_chat_action(STAFF, "typing"),
        bot.pin_chat_message(STAFF, card.message_id),  # a setter the emulator doesn't model
    ]
    for call in calls:
        with pytest.raises(TelegramForbiddenError) as caught:
            await call
        assert caught.value.message == KICKED
    assert fake.bot_messages(STAFF) == [fake.message(STAFF, card.message_id)]
    assert fake.text_of(fake.message(STAFF, card.message_id)) == "Ticket #1"
    assert fake.bot_messages(alice.id) == []

    # Nothing from the group reaches it; its customers still do.
    fake.send_text(anna, "is the bot gone?", chat_id=STAFF)
    fake.send_text(alice, "hello")
    updates = await fresh_updates(bot, fake)
    assert [u.message.chat.id for u in updates if u.message] == [alice.id]
    assert len(updates) == 1


async def test_the_bot_added_back_as_administrator_works_again(
    fake: FakeTelegram, bot: Bot, staff: tuple[FakeUser, FakeUser]
) -> None:
    anna, boris = staff
    fake.kick_bot(STAFF, by=boris)
    await fresh_updates(bot, fake)

    fake.add_bot(STAFF, by=boris)
    change, joined = await fresh_updates(bot, fake)
    assert change.my_chat_member is not None
    assert change.my_chat_member.from_user.id == boris.id
    assert isinstance(change.my_chat_member.old_chat_member, ChatMemberBanned)
    new = change.my_chat_member.new_chat_member
    assert isinstance(new, ChatMemberAdministrator)
    assert new.can_manage_topics
    assert new.can_delete_messages
    assert joined.message is not None
    assert joined.message.chat.id == STAFF
    assert [u.id for u in joined.message.new_chat_members or []] == [BOT_ID]

    assert (await bot.send_message(STAFF, "back")).chat.id == STAFF
    assert isinstance(await bot.get_chat_member(STAFF, BOT_ID), ChatMemberAdministrator)
    assert BOT_ID in {m.user.id for m in await bot.get_chat_administrators(STAFF)}
    fake.send_text(anna, "welcome back", chat_id=STAFF)
    (update,) = await fresh_updates(bot, fake)
    assert update.message is not None
    assert update.message.text == "welcome back"
    with pytest.raises(AssertionError, match="already in"):
        fake.add_bot(STAFF, by=boris)


async def test_unbanned_but_not_back_the_bot_is_not_a_member(
    fake: FakeTelegram, bot: Bot, staff: tuple[FakeUser, FakeUser]
) -> None:
    _anna, boris = staff
    fake.kick_bot(STAFF, by=boris)
    fake.unban_bot(STAFF, by=boris)
    _kicked, unbanned = await fresh_updates(bot, fake)
    assert unbanned.my_chat_member is not None
    assert isinstance(unbanned.my_chat_member.old_chat_member, ChatMemberBanned)
    assert isinstance(unbanned.my_chat_member.new_chat_member, ChatMemberLeft)
    for call in (bot.send_message(STAFF, "x"), bot.get_chat(STAFF)):
        with pytest.raises(TelegramForbiddenError) as caught:
            await call
        assert caught.value.message == NOT_MEMBER

    # A public group lets a bot that is not a member read it, not write there.
    fake.groups[STAFF].username = "ecomet_staff"
    assert (await bot.get_chat(STAFF)).title == "Support staff"
    assert isinstance(await bot.get_chat_member(STAFF, BOT_ID), ChatMemberLeft)
    with pytest.raises(TelegramForbiddenError, match="not a member"):
        await bot.send_message(STAFF, "x")

    fake.add_bot(STAFF, by=boris, admin=False)
    change, _joined = await fresh_updates(bot, fake)
    assert change.my_chat_member is not None
    assert isinstance(change.my_chat_member.old_chat_member, ChatMemberLeft)
    assert isinstance(change.my_chat_member.new_chat_member, ChatMemberMember)
    await bot.send_message(STAFF, "a plain member again")


async def test_a_removed_bot_survives_a_snapshot(
    fake: FakeTelegram, bot: Bot, staff: tuple[FakeUser, FakeUser]
) -> None:
    _anna, boris = staff
    fake.kick_bot(STAFF, by=boris)
    again = FakeTelegram(token=TOKEN)
    again.restore_json(fake.snapshot_json())
    assert again.groups[STAFF].bot_kicked
    assert again.groups[STAFF].bot_rights is None
