"""The sandbox's kept world (``--db PATH`` keeps it in ``PATH.world``) is JSON, never pickle:
everything a person sees comes back from it, and a file that is not such JSON is never run."""

from __future__ import annotations

import json
import logging
import os
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ShiftedClock
from bot.emulator import FakeTelegram
from bot.emulator.world import World
from bot.sandbox.render import image_type
from bot.sandbox.runner import WORLD_FORMAT, host_refusal, load_world, page_address, save_world
from bot.sandbox.web import disposition
from bot.sandbox.world import SANDBOX_TOKEN, STAFF_CHAT_ID, populate

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def bot_call(fake: FakeTelegram, method: str, **params: Any) -> Any:
    """The bot calls the Bot API (without HTTP: the emulator's own dispatcher)."""
    return fake.api.call(method, fake._prepare(method, params, {}), {})


def busy_world() -> FakeTelegram:
    """The sandbox's world after some play: chats, topics, files, buttons, edits, reactions,
    commands, pending updates and a deleted message."""
    fake = FakeTelegram(SANDBOX_TOKEN, bot_name="e-Comet Support", first_update_id=5_000)
    people = {person.user.first_name: person.user for person in populate(fake)}
    alice, svetlana = people["Alice"], people["Светлана"]
    fake.send_command(alice, "/start")
    hello = fake.send_text(alice, "Hello, my login fails: https://e-comet.example")
    fake.edit_text(alice, hello, "Hello, my login fails after the update")
    fake.send_photo(alice, "the screen", content=PNG)
    fake.send_album(alice, 2, "two logs", kind="document")
    fake.send_document(alice, 'a "quoted" <name>.html', "text/html", content=b"<script>1</script>")
    fake.send_sticker(alice)
    fake.send_voice(alice)
    card = bot_call(
        fake,
        "sendMessage",
        chat_id=alice.id,
        text="<b>Request #1</b> is registered",
        parse_mode="HTML",
        reply_markup={"inline_keyboard": [[{"text": "Solved", "callback_data": "ok:1"}]]},
    )
    fake.press(alice, card, "Solved")  # pending
    bot_call(fake, "answerCallbackQuery", callback_query_id=fake.press(alice, card, "Solved"))
    topic = bot_call(fake, "createForumTopic", chat_id=STAFF_CHAT_ID, name="#1 Cannot log in")
    thread = topic["message_thread_id"]
    fake.send_text(svetlana, "Taking it", STAFF_CHAT_ID, thread_id=thread)
    note = bot_call(
        fake, "sendMessage", chat_id=STAFF_CHAT_ID, message_thread_id=thread, text="a note"
    )
    bot_call(
        fake,
        "setMessageReaction",
        chat_id=STAFF_CHAT_ID,
        message_id=note["message_id"],
        reaction=[{"type": "emoji", "emoji": "✍"}],
    )
    bot_call(fake, "deleteMessage", chat_id=STAFF_CHAT_ID, message_id=note["message_id"])
    bot_call(fake, "closeForumTopic", chat_id=STAFF_CHAT_ID, message_thread_id=thread)
    bot_call(
        fake,
        "setMyCommands",
        commands=[{"command": "new", "description": "New request"}],
        language_code="en",
    )
    return fake


def through_json(fake: FakeTelegram) -> FakeTelegram:
    text = json.dumps(fake.snapshot_json())
    again = FakeTelegram(SANDBOX_TOKEN, bot_name="e-Comet Support")
    again.restore_json(json.loads(text))
    return again


def test_a_world_comes_back_from_json_as_it_was() -> None:
    fake = busy_world()
    again = through_json(fake)
    # Every kept part, compared field by field (users, groups and their topics, chats with
    # their messages, deleted ones and the bot's, files, updates, commands, reactions, ...).
    assert again.snapshot() == fake.snapshot()
    for chat_id in (1001, STAFF_CHAT_ID):
        assert again.messages(chat_id) == fake.messages(chat_id)
        assert again.bot_messages(chat_id) == fake.bot_messages(chat_id)
        assert again.deleted_messages(chat_id) == fake.deleted_messages(chat_id)
    topics = again.groups[STAFF_CHAT_ID].topics
    assert [(t.name, t.closed) for t in topics.values()] == [("#1 Cannot log in", True)]
    assert again.commands_for(1001) == [{"command": "new", "description": "New request"}]
    assert again.pending_updates() == fake.pending_updates()
    assert again.reactions == fake.reactions
    assert again.callbacks == fake.callbacks
    assert again.answers == fake.answers
    assert len(again.callbacks) == len(again.answers) == 1
    # Files keep their bytes, and a photo's sizes are still one file.
    photo = next(m for m in again.messages(1001) if "photo" in m)["photo"]
    assert {id(again.files[size["file_id"]]) for size in photo} == {
        id(again.files_by_path[again.files[photo[0]["file_id"]].file_path or ""])
    }
    assert again.file_bytes(photo[-1]["file_id"]) == PNG
    # Ids go on from where the world stopped.
    later = again.send_text(1001, "after the restart")
    assert later["message_id"] > fake.messages(1001)[-1]["message_id"]
    assert again.updates[-1]["update_id"] > fake.updates[-1]["update_id"]
    assert again.new_file("document", b"x").file_path not in fake.files_by_path


def test_the_json_form_covers_every_kept_part_and_has_a_version() -> None:
    state = busy_world().snapshot_json()
    # A part added to World._KEPT must be added to the JSON form too.
    assert set(World._KEPT) <= set(state)
    assert state["version"] == World.JSON_VERSION
    assert json.loads(json.dumps(state)) == state  # plain JSON data, nothing else


def test_a_damaged_or_other_version_state_changes_nothing() -> None:
    fake = busy_world()
    before = fake.snapshot()
    state = fake.snapshot_json()
    broken: Any
    for broken in (
        state | {"version": 99},
        {k: v for k, v in state.items() if k != "users"},
        state | {"file_records": [{"content": "not base64!"}]},
        [],
    ):
        with pytest.raises((ValueError, KeyError, TypeError)):
            fake.restore_json(broken)
        assert fake.snapshot() == before


def test_the_kept_world_file_is_json_with_the_clock(tmp_path: Path) -> None:
    fake = busy_world()
    path = tmp_path / "sandbox.sqlite3.world"
    save_world(fake, ShiftedClock(timedelta(days=1, hours=2)), path)
    kept = json.loads(path.read_text(encoding="utf-8"))
    assert kept["format"] == WORLD_FORMAT
    assert kept["version"] == 1
    assert kept["clock_offset_seconds"] == 26 * 3600
    assert not path.with_name(path.name + ".tmp").exists()

    again = FakeTelegram(SANDBOX_TOKEN)
    clock = ShiftedClock()
    assert load_world(again, clock, path)
    assert clock.offset == timedelta(days=1, hours=2)
    assert again.snapshot() == fake.snapshot()


class _Trap:
    """Unpickling this creates a directory: proof that the file was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_a_pickled_world_is_not_loaded_and_not_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "the-pickle-ran"
    path = tmp_path / "sandbox.sqlite3.world"
    path.write_bytes(pickle.dumps({"world": _Trap(marker), "offset": timedelta(days=1)}))
    fake = FakeTelegram(SANDBOX_TOKEN)
    clock = ShiftedClock()
    with caplog.at_level(logging.WARNING, logger="bot.sandbox"):
        assert not load_world(fake, clock, path)
    assert not marker.exists()
    assert clock.offset == timedelta(0)
    assert "cannot be read" in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        json.dumps({"format": WORLD_FORMAT, "version": 0, "world": {}}).encode(),
        json.dumps({"format": "something else", "version": 1}).encode(),
        json.dumps([1, 2, 3]).encode(),
        json.dumps(
            {"format": WORLD_FORMAT, "version": 1, "clock_offset_seconds": 0, "world": {}}
        ).encode(),
    ],
)
def test_a_damaged_or_old_world_file_is_a_warning(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sandbox.sqlite3.world"
    path.write_bytes(content)
    assert not load_world(FakeTelegram(SANDBOX_TOKEN), ShiftedClock(), path)


@pytest.mark.parametrize(
    ("host", "allow_remote", "refused"),
    [
        ("127.0.0.1", False, False),
        ("127.0.0.2", False, False),
        ("localhost", False, False),
        ("::1", False, False),
        ("[::1]", False, False),
        ("0.0.0.0", False, True),
        ("", False, True),
        ("::", False, True),
        ("192.168.1.10", False, True),
        ("0.0.0.0", True, False),
        ("192.168.1.10", True, False),
    ],
)
def test_only_loopback_hosts_without_allow_remote(
    host: str, allow_remote: bool, refused: bool
) -> None:
    refusal = host_refusal(host, allow_remote)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert "\n" not in refusal
        assert "--allow-remote" in refusal


def test_the_printed_address_opens_on_this_machine_and_carries_the_token() -> None:
    assert page_address("127.0.0.1", 8080, None) == "http://127.0.0.1:8080/"
    assert page_address("0.0.0.0", 8080, "abc") == "http://127.0.0.1:8080/?token=abc"
    assert page_address("::", 81, None) == "http://[::1]:81/"
    assert page_address("192.168.1.10", 81, "t") == "http://192.168.1.10:81/?token=t"


def test_only_raster_images_count_as_images() -> None:
    assert image_type(PNG) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0 jpeg") == "image/jpeg"
    assert image_type(b"GIF89a...") == "image/gif"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert image_type(b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>') is None
    assert image_type(b"<!doctype html><script>alert(1)</script>") is None


def test_a_file_name_cannot_break_its_header() -> None:
    value = disposition("attachment", 'evil"; name=x\r\nSet-Cookie: a=b;ж.html')
    assert "\r" not in value
    assert "\n" not in value
    plain = value.split('filename="', 1)[1].split('"', 1)[0]
    assert '"' not in plain
    assert ";" not in plain
    assert value.endswith("%D0%B6.html")
    assert value.startswith("attachment; ")
