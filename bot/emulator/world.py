"""In-memory state of the emulated Telegram: users, chats, messages, files, updates.

Also holds the *driver* side: what users do (send, edit, press buttons) and what tests observe.
All mutations are synchronous, so they are atomic with respect to the asyncio event loop that
serves the HTTP API; waiting helpers live in :mod:`bot.emulator.server`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .html_parser import find_auto_entities, utf16_len

JsonDict = dict[str, Any]

__all__ = [
    "DEFAULT_BOT_RIGHTS",
    "Call",
    "ChatState",
    "FakeChat",
    "FakeUser",
    "FileRecord",
    "StoredMessage",
    "Topic",
    "World",
]

DEFAULT_BOT_RIGHTS: dict[str, bool] = {
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": True,
    "can_edit_stories": True,
    "can_delete_stories": True,
    "can_pin_messages": True,
    "can_manage_topics": True,
}

# Update types delivered when allowed_updates is empty/not given (Telegram's default).
DEFAULT_ALLOWED = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)


@dataclass
class FakeUser:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = None
    last_name: str | None = None
    is_bot: bool = False
    is_premium: bool = False
    started: bool = False  # has written to the bot (so the bot may write to them)
    blocked: bool = False  # has blocked the bot

    def to_user(self) -> JsonDict:
        d: JsonDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            d["last_name"] = self.last_name
        if self.username:
            d["username"] = self.username
        if self.language_code:
            d["language_code"] = self.language_code
        if self.is_premium:
            d["is_premium"] = True
        return d

    def to_chat(self) -> JsonDict:
        d: JsonDict = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            d["last_name"] = self.last_name
        if self.username:
            d["username"] = self.username
        return d


@dataclass
class Topic:
    thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    deleted: bool = False

    def to_json(self) -> JsonDict:
        d: JsonDict = {
            "message_thread_id": self.thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            d["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return d


@dataclass
class FakeChat:
    """A supergroup (Telegram turns every group with a bot admin into a supergroup nowadays)."""

    id: int
    title: str
    type: str = "supergroup"
    is_forum: bool = False
    username: str | None = None
    members: set[int] = field(default_factory=set)
    admins: set[int] = field(default_factory=set)
    owner: int | None = None
    bot_rights: dict[str, bool] | None = field(default_factory=lambda: dict(DEFAULT_BOT_RIGHTS))
    bot_is_member: bool = True
    # Removed by an administrator ("kicked", i.e. banned): refused everything there until
    # unbanned or added back (see World.kick_bot); left but not banned: bot_is_member False.
    bot_kicked: bool = False
    topics: dict[int, Topic] = field(default_factory=dict)
    migrated_to: int | None = None  # upgraded to a supergroup with this id
    # A public group (with a username) can be read, and its inline buttons pressed, by people
    # who are not members; with join_to_send_messages off they may write there too.
    join_to_send_messages: bool = True

    def to_chat(self) -> JsonDict:
        d: JsonDict = {"id": self.id, "title": self.title, "type": self.type}
        if self.username:
            d["username"] = self.username
        if self.is_forum:
            d["is_forum"] = True
        return d

    def bot_can(self, right: str) -> bool:
        return bool(self.bot_rights and self.bot_rights.get(right))


@dataclass
class StoredMessage:
    data: JsonDict
    by_bot: bool
    reply_keyboard: JsonDict | None = None  # non-inline reply_markup (not part of Message)
    sent_at: float = field(default_factory=time.monotonic)


@dataclass
class ChatState:
    chat_id: int
    next_id: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    deleted: dict[int, StoredMessage] = field(default_factory=dict)
    consumed: set[int] = field(default_factory=set)
    bot_ids: list[int] = field(default_factory=list)  # ids of messages sent by the bot, in order


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    kind: str  # photo, document, sticker, voice, audio, video, animation, video_note
    content: bytes
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    file_path: str | None = None
    photo_sizes: list[JsonDict] | None = None  # for photos: all sizes (each maps to this record)

    @property
    def file_size(self) -> int:
        return len(self.content)


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: JsonDict
    ok: bool
    error: str | None
    time: float
    error_code: int | None = None
    result: Any = None


@dataclass
class Fault:
    method: str  # lower-case
    times: int
    error_code: int
    description: str | None
    retry_after: int | None
    chat_id: int | str | None
    drop: bool = False
    late: float = 0.0  # no error: the call takes effect, and its answer comes this much later


def _fake_file_id(kind: str) -> tuple[str, str]:
    prefix = {
        "photo": b"\x02\x00\x02",
        "document": b"\x05\x00\x02",
        "sticker": b"\x08\x00\x02",
        "voice": b"\x03\x00\x02",
    }.get(kind, b"\x04\x00\x02")
    raw = prefix + secrets.token_bytes(50)
    fid = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    uid = base64.urlsafe_b64encode(b"\x01\x00" + secrets.token_bytes(10)).decode().rstrip("=")
    return fid, uid


class World:
    """All state of the emulated Telegram plus the driver API used by tests."""

    def __init__(
        self,
        token: str,
        *,
        bot_username: str = "ecomet_support_bot",
        bot_name: str = "Ecomet Support",
        privacy_mode: bool = True,
        first_update_id: int = 700_000_001,
    ) -> None:
        self.token = token
        bot_id = int(token.split(":")[0])
        self.bot_user: JsonDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": not privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.privacy_mode = privacy_mode
        self.users: dict[int, FakeUser] = {}
        self.groups: dict[int, FakeChat] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, FileRecord] = {}
        self.files_by_path: dict[str, FileRecord] = {}
        self.updates: list[JsonDict] = []
        self.update_history: list[JsonDict] = []  # every update ever queued, for redeliver()
        self._update_ids = itertools.count(first_update_id)
        self.allowed_updates: frozenset[str] = DEFAULT_ALLOWED
        self.webhook: JsonDict | None = None
        # Telegram sends webhooks to HTTPS only; a test may let it POST to http://127.0.0.1.
        self.allow_http_webhooks = False
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}
        self.callbacks: dict[str, JsonDict] = {}  # pending callback queries
        self.answers: dict[str, JsonDict] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.chat_actions: list[tuple[int, str, int | None]] = []
        # The bot's reactions by (chat id, message id): not part of a Message, as in Telegram.
        self.reactions: dict[tuple[int, int], list[str]] = {}
        self._changed = asyncio.Event()
        self._file_counter = itertools.count(1)
        # Seconds since the epoch for message dates; the sandbox points it at the bot's clock.
        self.clock: Callable[[], float] = time.time

    # ------------------------------------------------------------------ notification

    def _pulse(self) -> None:
        """Wakes up everybody waiting for a change (new update, message, call, answer)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def notify_changed(self) -> None:
        """Wakes up everybody waiting in :meth:`wait_changed` (the sandbox's clock moved)."""
        self._pulse()

    async def wait_changed(self, timeout: float) -> bool:
        """Waits for the next change of anything (update, message, call, answer); False when
        ``timeout`` seconds pass without one."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ persistence

    _KEPT = (
        "users",
        "groups",
        "chats",
        "files",
        "files_by_path",
        "updates",
        "commands",
        "callbacks",
        "answers",
        "allowed_updates",
        "reactions",
    )

    def snapshot(self) -> JsonDict:
        """Everything a person would see again after a restart (chats, files, topics, updates
        not yet confirmed), as plain picklable data; the call log is not kept."""
        state: JsonDict = {name: copy.deepcopy(getattr(self, name)) for name in self._KEPT}
        state["next_update_id"] = self._peek("_update_ids")
        state["next_file"] = self._peek("_file_counter")
        return state

    def restore(self, state: JsonDict) -> None:
        for name in self._KEPT:
            setattr(self, name, state[name])
        self._update_ids = itertools.count(int(state["next_update_id"]))
        self._file_counter = itertools.count(int(state["next_file"]))
        self._pulse()

    def _peek(self, counter: str) -> int:
        value = next(getattr(self, counter))
        setattr(self, counter, itertools.count(value))
        return int(value)

    # A JSON form of the snapshot, for a world kept in a file: plain data only (reading it back
    # builds nothing but this module's dataclasses, unlike unpickling). Bump the version when
    # the form changes; restore_json() refuses other versions.
    JSON_VERSION = 1

    def snapshot_json(self) -> JsonDict:
        """:meth:`snapshot` as JSON-serialisable data (``json.dumps`` takes it as it is)."""
        # One copy of all parts, so a record shared by them (a file) stays one record.
        state: JsonDict = copy.deepcopy({name: getattr(self, name) for name in self._KEPT})
        state["next_update_id"] = self._peek("_update_ids")
        state["next_file"] = self._peek("_file_counter")
        records: list[FileRecord] = []
        index: dict[int, int] = {}  # id(record) -> its place in records (photo sizes share one)

        def ref(record: FileRecord) -> int:
            if id(record) not in index:
                index[id(record)] = len(records)
                records.append(record)
            return index[id(record)]

        files = {file_id: ref(record) for file_id, record in state["files"].items()}
        by_path = {path: ref(record) for path, record in state["files_by_path"].items()}
        return {
            "version": self.JSON_VERSION,
            "next_update_id": state["next_update_id"],
            "next_file": state["next_file"],
            "users": [_plain(user) for user in state["users"].values()],
            "groups": [
                _plain(group)
                | {
                    "members": sorted(group.members),
                    "admins": sorted(group.admins),
                    "topics": [_plain(topic) for topic in group.topics.values()],
                }
                for group in state["groups"].values()
            ],
            "chats": [
                {
                    "chat_id": chat.chat_id,
                    "next_id": chat.next_id,
                    "messages": [{"id": i} | _plain(m) for i, m in chat.messages.items()],
                    "deleted": [{"id": i} | _plain(m) for i, m in chat.deleted.items()],
                    "consumed": sorted(chat.consumed),
                    "bot_ids": list(chat.bot_ids),
                }
                for chat in state["chats"].values()
            ],
            "file_records": [
                _plain(record) | {"content": base64.b64encode(record.content).decode("ascii")}
                for record in records
            ],
            "files": files,
            "files_by_path": by_path,
            "updates": state["updates"],
            "commands": [
                {"scope": scope, "language": language, "commands": commands}
                for (scope, language), commands in state["commands"].items()
            ],
            "callbacks": state["callbacks"],
            "answers": state["answers"],
            "allowed_updates": sorted(state["allowed_updates"]),
            "reactions": [
                {"chat_id": chat_id, "message_id": message_id, "emoji": emoji}
                for (chat_id, message_id), emoji in state["reactions"].items()
            ],
        }

    def restore_json(self, state: JsonDict) -> None:
        """Brings back what :meth:`snapshot_json` gave. Raises ``ValueError`` (or ``KeyError``,
        ``TypeError``) for another version or a damaged state, before changing anything."""
        if not isinstance(state, dict) or state.get("version") != self.JSON_VERSION:
            found = state.get("version") if isinstance(state, dict) else None
            raise ValueError(f"world version {found!r}, expected {self.JSON_VERSION}")
        records = [
            FileRecord(**(raw | {"content": base64.b64decode(raw["content"], validate=True)}))
            for raw in state["file_records"]
        ]
        groups = {}
        for raw in state["groups"]:
            group = FakeChat(
                **(
                    raw
                    | {
                        "members": {int(m) for m in raw["members"]},
                        "admins": {int(a) for a in raw["admins"]},
                        "topics": {},
                    }
                )
            )
            group.topics = {int(t["thread_id"]): Topic(**t) for t in raw["topics"]}
            groups[group.id] = group
        chats = {}
        for raw in state["chats"]:
            chat = ChatState(
                int(raw["chat_id"]),
                next_id=int(raw["next_id"]),
                messages=_stored(raw["messages"]),
                deleted=_stored(raw["deleted"]),
                consumed={int(i) for i in raw["consumed"]},
                bot_ids=[int(i) for i in raw["bot_ids"]],
            )
            chats[chat.chat_id] = chat
        kept: JsonDict = {
            "users": {int(u["id"]): FakeUser(**u) for u in state["users"]},
            "groups": groups,
            "chats": chats,
            "files": {str(k): records[int(i)] for k, i in state["files"].items()},
            "files_by_path": {str(k): records[int(i)] for k, i in state["files_by_path"].items()},
            "updates": list(state["updates"]),
            "commands": {
                (str(c["scope"]), str(c["language"])): list(c["commands"])
                for c in state["commands"]
            },
            "callbacks": dict(state["callbacks"]),
            "answers": dict(state["answers"]),
            "allowed_updates": frozenset(str(u) for u in state["allowed_updates"]),
            "reactions": {
                (int(r["chat_id"]), int(r["message_id"])): list(r["emoji"])
                for r in state["reactions"]
            },
            "next_update_id": int(state["next_update_id"]),
            "next_file": int(state["next_file"]),
        }
        self.restore(kept)

    # ------------------------------------------------------------------ setup

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        username: str | None = None,
        language_code: str | None = "en",
        last_name: str | None = None,
        is_premium: bool = False,
        started: bool = False,
    ) -> FakeUser:
        """A Telegram user. ``started=True`` means they already talked to the bot."""
        if user_id == self.bot_user["id"]:
            raise ValueError("user id collides with the bot's id")
        user = FakeUser(
            user_id,
            first_name,
            username,
            language_code,
            last_name,
            is_premium=is_premium,
            started=started,
        )
        self.users[user_id] = user
        return user

    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        is_forum: bool = False,
        members: Iterable[int | FakeUser] = (),
        admins: Iterable[int | FakeUser] = (),
        owner: int | FakeUser | None = None,
        bot_rights: dict[str, bool] | None = None,
        bot_is_admin: bool = True,
        bot_is_member: bool = True,
        username: str | None = None,
    ) -> FakeChat:
        """A supergroup the bot is in. The bot is an administrator with ``bot_rights`` (default:
        all usual rights incl. can_manage_topics) unless ``bot_is_admin=False``.  Admins and the
        owner are members too."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative (supergroups: -100...)")
        rights: dict[str, bool] | None = None
        if bot_is_admin:
            rights = dict(DEFAULT_BOT_RIGHTS)
            if bot_rights is not None:
                rights.update(bot_rights)
        grp = FakeChat(
            chat_id,
            title,
            is_forum=is_forum,
            username=username,
            bot_rights=rights,
            bot_is_member=bot_is_member,
        )
        grp.members = {_uid(m) for m in members}
        grp.admins = {_uid(a) for a in admins}
        if owner is not None:
            grp.owner = _uid(owner)
        grp.members |= grp.admins | ({grp.owner} if grp.owner is not None else set())
        self.groups[chat_id] = grp
        st = self._chat_state(chat_id)
        # Message 1 of a group is its creation (and, in a forum, the General topic's id).
        st.next_id = max(st.next_id, 2)
        return grp

    def upgrade_group(
        self, chat_id: int, new_chat_id: int, *, by: int | FakeUser, notify: bool = True
    ) -> FakeChat:
        """Telegram upgrades a group to a supergroup with a new id: the same people and rights
        there; the old id answers 400 with ``migrate_to_chat_id`` from now on. With ``notify``
        the bot gets the service messages (``migrate_to_chat_id`` in the old chat,
        ``migrate_from_chat_id`` in the new one), as a member that sees the group does."""
        old = self._group(chat_id)
        user = self._user(by)
        new = FakeChat(
            new_chat_id,
            old.title,
            is_forum=old.is_forum,
            username=old.username,
            members=set(old.members),
            admins=set(old.admins),
            owner=old.owner,
            bot_rights=dict(old.bot_rights) if old.bot_rights is not None else None,
            bot_is_member=old.bot_is_member,
            bot_kicked=old.bot_kicked,
        )
        self.groups[new_chat_id] = new
        self._chat_state(new_chat_id).next_id = 2
        moved = self._store_message(
            chat_id, user.to_user(), {"migrate_to_chat_id": new_chat_id}, by_bot=False
        )
        old.migrated_to = new_chat_id
        arrived = self._store_message(
            new_chat_id, user.to_user(), {"migrate_from_chat_id": chat_id}, by_bot=False
        )
        if notify:
            self._enqueue("message", moved.data)
            self._enqueue("message", arrived.data)
        return new

    def add_member(
        self,
        chat_id: int,
        user: int | FakeUser,
        *,
        admin: bool = False,
        by: int | FakeUser | None = None,
    ) -> None:
        """Joins (``by`` None) or is added by ``by``; ``admin``: promoted. An administrator
        bot that asked for ``chat_member`` updates gets one, as in Telegram."""
        grp = self._group(chat_id)
        old = self._member_json(grp, _uid(user))
        grp.members.add(_uid(user))
        if admin:
            grp.admins.add(_uid(user))
        self._member_changed(grp, _uid(user), old, by)

    def remove_member(
        self, chat_id: int, user: int | FakeUser, *, by: int | FakeUser | None = None
    ) -> None:
        """Leaves (``by`` None: status "left") or is removed by ``by`` ("kicked")."""
        grp = self._group(chat_id)
        old = self._member_json(grp, _uid(user))
        grp.members.discard(_uid(user))
        grp.admins.discard(_uid(user))
        self._member_changed(grp, _uid(user), old, by, kicked=by is not None)

    # ------------------------------------------------------------------ the bot's own membership

    def kick_bot(self, chat_id: int, *, by: int | FakeUser) -> None:
        """An administrator ``by`` removes the bot from the group, as Telegram's clients do in a
        supergroup: banned ("kicked"), its administrator rights gone.

        The bot gets a ``my_chat_member`` update (old: its status until now, new: "kicked",
        ``from``: ``by``); never a ``chat_member`` one for itself, and nothing more from the
        group (messages, members' changes) until it is back. Every Bot API call on the group
        then fails with 403 ``Forbidden: bot was kicked from the supergroup chat``, which
        aiogram raises as ``TelegramForbiddenError`` (sending, editing, deleting, topics,
        getChat, getChatMember, copying from it...). A service message ``left_chat_member``
        stays in the group's history, not sent to the bot. See :meth:`unban_bot`,
        :meth:`add_bot`."""
        grp = self._group(chat_id)
        actor = self._chat_admin(grp, by)
        if grp.bot_kicked:
            raise AssertionError(f"the bot is already removed from {chat_id}")
        old = self._bot_member_json(grp)
        grp.bot_kicked, grp.bot_is_member, grp.bot_rights = True, False, None
        self._store_message(
            chat_id, actor.to_user(), {"left_chat_member": self._bot_user_short()}, by_bot=False
        )
        self._bot_member_changed(grp, actor, old)

    def unban_bot(self, chat_id: int, *, by: int | FakeUser) -> None:
        """``by`` takes the removed bot off the group's ban list without adding it back: its
        status goes from "kicked" to "left" (a ``my_chat_member`` update), and its calls on
        the group now fail with 403 ``Forbidden: bot is not a member of the supergroup chat``
        (a public group, one with a username, still lets it read: getChat, getChatMember)."""
        grp = self._group(chat_id)
        actor = self._chat_admin(grp, by)
        if not grp.bot_kicked:
            raise AssertionError(f"the bot is not banned in {chat_id}")
        old = self._bot_member_json(grp)
        grp.bot_kicked = False
        self._bot_member_changed(grp, actor, old)

    def add_bot(
        self,
        chat_id: int,
        *,
        by: int | FakeUser,
        admin: bool = True,
        bot_rights: dict[str, bool] | None = None,
    ) -> None:
        """``by`` adds the bot (back) to the group, as an administrator with the usual rights
        (:data:`DEFAULT_BOT_RIGHTS`, updated with ``bot_rights``) or, ``admin=False``, as a
        plain member. Adding lifts a ban. The bot gets a ``my_chat_member`` update (old:
        "kicked" or "left", new: "administrator"/"member", ``from``: ``by``) and then, like
        any member, the ``new_chat_members`` service message as a ``message`` update; from
        then on the group answers its calls again."""
        grp = self._group(chat_id)
        actor = self._chat_admin(grp, by)
        if grp.bot_is_member:
            raise AssertionError(f"the bot is already in {chat_id}")
        old = self._bot_member_json(grp)
        grp.bot_kicked, grp.bot_is_member = False, True
        grp.bot_rights = None
        if admin:
            grp.bot_rights = dict(DEFAULT_BOT_RIGHTS) | (bot_rights or {})
        self._bot_member_changed(grp, actor, old)
        bot = self._bot_user_short()
        joined = self._store_message(
            chat_id,
            actor.to_user(),
            {"new_chat_members": [bot], "new_chat_member": bot, "new_chat_participant": bot},
            by_bot=False,
        )
        if self._bot_sees(chat_id, joined.data):
            self._enqueue("message", joined.data)

    def _chat_admin(self, grp: FakeChat, user: int | FakeUser) -> FakeUser:
        """Only the owner or an administrator adds and removes members (Telegram's rule)."""
        actor = self._user(user)
        if actor.id != grp.owner and actor.id not in grp.admins:
            raise AssertionError(
                f"user {actor.id} is not an administrator of {grp.id}; only an administrator "
                "adds or removes the bot (add_group(admins=...) or add_member(admin=True))"
            )
        return actor

    def _bot_member_json(self, grp: FakeChat) -> JsonDict:
        """The bot's ChatMember in ``grp``, as getChatMember and my_chat_member show it."""
        from .methods import _admin

        bot = self._bot_user_short()
        if grp.bot_kicked:
            return {"status": "kicked", "user": bot, "until_date": 0}
        if not grp.bot_is_member:
            return {"status": "left", "user": bot}
        if grp.bot_rights is not None:
            return _admin(bot, grp.bot_rights, can_be_edited=False)
        return {"status": "member", "user": bot}

    def _bot_member_changed(self, grp: FakeChat, actor: FakeUser, old: JsonDict) -> None:
        """Telegram tells the bot of its own status as ``my_chat_member``, never ``chat_member``
        (telegram-bot-api's add_update_chat_member)."""
        self._enqueue(
            "my_chat_member",
            {
                "chat": grp.to_chat(),
                "from": actor.to_user(),
                "date": int(self.clock()),
                "old_chat_member": old,
                "new_chat_member": self._bot_member_json(grp),
            },
        )

    def _member_json(self, grp: FakeChat, user_id: int, *, kicked: bool = False) -> JsonDict:
        """The ChatMember getChatMember would return (without the bot's own)."""
        from .methods import DEFAULT_RIGHTS_ADMIN, _admin

        user = self.users[user_id].to_user() if user_id in self.users else {"id": user_id}
        if grp.owner == user_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in grp.admins:
            return _admin(user, dict(DEFAULT_RIGHTS_ADMIN), can_be_edited=False)
        if user_id in grp.members:
            return {"status": "member", "user": user}
        if kicked:
            return {"status": "kicked", "user": user, "until_date": 0}
        return {"status": "left", "user": user}

    def _member_changed(
        self,
        grp: FakeChat,
        user_id: int,
        old: JsonDict,
        by: int | FakeUser | None,
        *,
        kicked: bool = False,
    ) -> None:
        """A ``chat_member`` update: Telegram sends them to administrator bots only."""
        if grp.bot_rights is None or not grp.bot_is_member or user_id not in self.users:
            return
        new = self._member_json(grp, user_id, kicked=kicked)
        if new == old:
            return
        actor = self._user(by) if by is not None else self.users[user_id]
        self._enqueue(
            "chat_member",
            {
                "chat": grp.to_chat(),
                "from": actor.to_user(),
                "date": int(self.clock()),
                "old_chat_member": old,
                "new_chat_member": new,
            },
        )

    def block(self, user: int | FakeUser) -> None:
        self._user(user).blocked = True

    def unblock(self, user: int | FakeUser) -> None:
        self._user(user).blocked = False

    def create_topic(
        self,
        chat_id: int,
        name: str,
        *,
        by: int | FakeUser | None = None,
        icon_color: int = 0x6FB9F0,
    ) -> Topic:
        """A forum topic created by a user (the bot gets the forum_topic_created service
        message as an update)."""
        grp = self._group(chat_id)
        if not grp.is_forum:
            raise AssertionError(f"chat {chat_id} is not a forum")
        creator = self._user(by) if by is not None else None
        return self._create_topic(grp, name, icon_color, None, creator)

    # ------------------------------------------------------------------ lookups

    def _user(self, user: int | FakeUser) -> FakeUser:
        uid = _uid(user)
        if uid not in self.users:
            raise AssertionError(f"unknown user {uid}; call fake.add_user() first")
        return self.users[uid]

    def _group(self, chat_id: int) -> FakeChat:
        if chat_id not in self.groups:
            raise AssertionError(f"unknown group {chat_id}; call fake.add_group() first")
        return self.groups[chat_id]

    def _chat_state(self, chat_id: int) -> ChatState:
        st = self.chats.get(chat_id)
        if st is None:
            st = self.chats[chat_id] = ChatState(chat_id)
        return st

    def chat_json(self, chat_id: int) -> JsonDict:
        if chat_id in self.groups:
            return self.groups[chat_id].to_chat()
        return self.users[chat_id].to_chat()

    def user_json(self, user_id: int) -> JsonDict:
        if user_id == self.bot_user["id"]:
            return self._bot_user_short()
        return self.users[user_id].to_user()

    def _bot_user_short(self) -> JsonDict:
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    # ------------------------------------------------------------------ messages (shared)

    def _store_message(
        self,
        chat_id: int,
        sender: JsonDict,
        content: JsonDict,
        *,
        by_bot: bool,
        thread_id: int | None = None,
        reply_to: StoredMessage | None = None,
    ) -> StoredMessage:
        """Creates a message with the next per-chat message_id. ``thread_id`` must already be
        validated (forum topic id, or None for General/non-forums)."""
        st = self._chat_state(chat_id)
        mid = st.next_id
        st.next_id += 1
        data: JsonDict = {"message_id": mid}
        grp = self.groups.get(chat_id)
        if thread_id is not None and grp is not None and grp.is_forum:
            data["message_thread_id"] = thread_id
            data["is_topic_message"] = True
        data["from"] = copy.deepcopy(sender)
        data["chat"] = self.chat_json(chat_id)
        data["date"] = int(self.clock())
        if reply_to is None and thread_id is not None and grp is not None and grp.is_forum:
            # Telegram quirk: messages in a topic reply to the topic's creation message.
            root = st.messages.get(thread_id)
            if root is not None:
                reply_to = root
        if reply_to is not None:
            data["reply_to_message"] = _strip_reply(reply_to.data)
        data.update(copy.deepcopy(content))
        msg = StoredMessage(data=data, by_bot=by_bot)
        st.messages[mid] = msg
        if by_bot:
            st.bot_ids.append(mid)
        self._pulse()
        return msg

    def _find(self, chat_id: int, message_id: int) -> StoredMessage | None:
        st = self.chats.get(chat_id)
        if st is None:
            return None
        return st.messages.get(message_id)

    # ------------------------------------------------------------------ updates

    def _enqueue(self, kind: str, payload: JsonDict) -> JsonDict | None:
        if kind not in self.allowed_updates:
            return None
        upd: JsonDict = {"update_id": next(self._update_ids), kind: copy.deepcopy(payload)}
        self.updates.append(upd)
        self.update_history.append(upd)
        self._pulse()
        return upd

    def redeliver(self, update: JsonDict) -> None:
        """Queue an update again under its own update_id, as Telegram does when a bot process
        died before confirming it: the next getUpdates without an offset returns it again."""
        if all(u["update_id"] != update["update_id"] for u in self.updates):
            self.updates.append(copy.deepcopy(update))
            self.updates.sort(key=lambda u: int(u["update_id"]))
        self._pulse()

    def _bot_sees(self, chat_id: int, msg: JsonDict) -> bool:
        """Privacy mode: in groups a non-admin bot only sees commands, replies to it, mentions
        and service messages."""
        grp = self.groups.get(chat_id)
        if grp is None:
            return True
        if not grp.bot_is_member:
            return False
        if grp.bot_rights is not None or not self.privacy_mode:
            return True
        text = msg.get("text") or msg.get("caption") or ""
        if text.startswith("/"):
            return True
        if f"@{self.bot_user['username']}".lower() in text.lower():
            return True
        reply = msg.get("reply_to_message")
        if reply and reply.get("from", {}).get("id") == self.bot_user["id"]:
            return True
        return "text" not in msg and "caption" not in msg and "photo" not in msg

    # ------------------------------------------------------------------ driver: user actions

    def _user_target(self, user: FakeUser, chat_id: int | None) -> int:
        if chat_id is None or chat_id == user.id:
            user.started = True
            user.blocked = False  # writing to a bot unblocks it
            self._chat_state(user.id)
            return user.id
        if chat_id not in self.groups:
            raise AssertionError(f"unknown chat {chat_id}")
        grp = self.groups[chat_id]
        if user.id not in grp.members and (grp.username is None or grp.join_to_send_messages):
            raise AssertionError(
                f"user {user.id} is not a member of {chat_id}; use add_group(members=...) "
                "or fake.add_member()"
            )
        return chat_id

    def _user_thread(
        self, chat_id: int, thread_id: int | None, reply: StoredMessage | None
    ) -> int | None:
        grp = self.groups.get(chat_id)
        if grp is None or not grp.is_forum:
            return None
        if thread_id is None and reply is not None:
            thread_id = reply.data.get("message_thread_id")
        if thread_id is None or thread_id == 1:
            return None
        topic = grp.topics.get(thread_id)
        if topic is None or topic.deleted:
            raise AssertionError(f"topic {thread_id} does not exist in chat {chat_id}")
        return thread_id

    def _user_send(
        self,
        user: int | FakeUser,
        content: JsonDict,
        *,
        chat_id: int | None,
        reply_to: JsonDict | int | None,
        thread_id: int | None,
    ) -> JsonDict:
        u = self._user(user)
        target = self._user_target(u, chat_id)
        reply: StoredMessage | None = None
        if reply_to is not None:
            rid = reply_to if isinstance(reply_to, int) else int(reply_to["message_id"])
            reply = self._find(target, rid)
            if reply is None:
                raise AssertionError(f"message {rid} not found in chat {target}")
        thread = self._user_thread(target, thread_id, reply)
        msg = self._store_message(
            target, u.to_user(), content, by_bot=False, thread_id=thread, reply_to=reply
        )
        if self._bot_sees(target, msg.data):
            self._enqueue("message", msg.data)
        return copy.deepcopy(msg.data)

    def send_text(
        self,
        user: int | FakeUser,
        text: str,
        chat_id: int | None = None,
        reply_to: JsonDict | int | None = None,
        thread_id: int | None = None,
        *,
        entities: list[JsonDict] | None = None,
        quote: str | None = None,
    ) -> JsonDict:
        """The user sends a text message (private chat by default). Entities that Telegram
        clients detect (commands, urls, mentions, hashtags) are added automatically.
        ``quote``: a part of the replied message the user selected (Telegram's ``quote``)."""
        ents = list(entities or [])
        ents += find_auto_entities(text, ents)
        content: JsonDict = {"text": text}
        if ents:
            content["entities"] = sorted(ents, key=lambda e: (e["offset"], -e["length"]))
        if quote is not None:
            content["quote"] = self._quote(user, chat_id, reply_to, quote)
        return self._user_send(
            user, content, chat_id=chat_id, reply_to=reply_to, thread_id=thread_id
        )

    def _quote(
        self, user: int | FakeUser, chat_id: int | None, reply_to: JsonDict | int | None, part: str
    ) -> JsonDict:
        """Telegram's TextQuote: only a part of the replied message's own text can be quoted."""
        if reply_to is None:
            raise AssertionError("a quote needs the message it replies to")
        target = self._user_target(self._user(user), chat_id)
        rid = reply_to if isinstance(reply_to, int) else int(reply_to["message_id"])
        replied = self._find(target, rid)
        whole = (replied.data.get("text") or replied.data.get("caption") or "") if replied else ""
        at = whole.find(part)
        if not part or at < 0:
            raise AssertionError(f"{part!r} is not a part of message {rid}")
        return {"text": part, "position": utf16_len(whole[:at]), "is_manual": True}

    def send_command(
        self,
        user: int | FakeUser,
        command: str,
        chat_id: int | None = None,
        reply_to: JsonDict | int | None = None,
        thread_id: int | None = None,
    ) -> JsonDict:
        """``command`` like "/start" or "/start payload"; gets a bot_command entity."""
        if not command.startswith("/"):
            command = "/" + command
        cmd = command.split()[0]
        ent = [{"type": "bot_command", "offset": 0, "length": utf16_len(cmd)}]
        return self.send_text(user, command, chat_id, reply_to, thread_id, entities=ent)

    def _caption(self, caption: str | None) -> JsonDict:
        if not caption:
            return {}
        d: JsonDict = {"caption": caption}
        ents = find_auto_entities(caption, [])
        if ents:
            d["caption_entities"] = ents
        return d

    def send_photo(
        self,
        user: int | FakeUser,
        caption: str | None = None,
        media_group_id: str | None = None,
        chat_id: int | None = None,
        reply_to: JsonDict | int | None = None,
        thread_id: int | None = None,
        *,
        content: bytes | None = None,
    ) -> JsonDict:
        rec = self.new_file("photo", content or _fake_jpeg(), mime_type="image/jpeg")
        body: JsonDict = {"photo": copy.deepcopy(rec.photo_sizes)}
        if media_group_id:
            body["media_group_id"] = media_group_id
        body.update(self._caption(caption))
        return self._user_send(user, body, chat_id=chat_id, reply_to=reply_to, thread_id=thread_id)

    def send_document(
        self,
        user: int | FakeUser,
        file_name: str = "log.txt",
        mime_type: str = "text/plain",
        caption: str | None = None,
        media_group_id: str | None = None,
        chat_id: int | None = None,
        reply_to: JsonDict | int | None = None,
        thread_id: int | None = None,
        *,
        content: bytes | None = None,
    ) -> JsonDict:
        data = content if content is not None else f"fake content of {file_name}\n".encode()
        rec = self.new_file("document", data, file_name=file_name, mime_type=mime_type)
        body: JsonDict = {"document": self.media_json(rec)}
        if media_group_id:
            body["media_group_id"] = media_group_id
        body.update(self._caption(caption))
        return self._user_send(user, body, chat_id=chat_id, reply_to=reply_to, thread_id=thread_id)

    def send_album(
        self,
        user: int | FakeUser,
        n: int = 3,
        caption: str | None = None,
        kind: str = "photo",
        chat_id: int | None = None,
        reply_to: JsonDict | int | None = None,
        thread_id: int | None = None,
        *,
        caption_on: int = 0,
    ) -> list[JsonDict]:
        """``n`` (2..10) photos/documents sharing a media_group_id; the caption goes on the
        first item (as Telegram clients mostly do), or on item ``caption_on`` (0-based; a
        client may put it elsewhere, e.g. under the last file of a document album)."""
        if not 2 <= n <= 10:
            raise ValueError("an album has 2-10 items")
        group_id = str(13_000_000_000_000_000 + secrets.randbelow(10**15))
        out: list[JsonDict] = []
        for i in range(n):
            cap = caption if i == caption_on else None
            if kind == "photo":
                out.append(self.send_photo(user, cap, group_id, chat_id, reply_to, thread_id))
            elif kind == "document":
                out.append(
                    self.send_document(
                        user,
                        f"file{i + 1}.txt",
                        "text/plain",
                        cap,
                        group_id,
                        chat_id,
                        reply_to,
                        thread_id,
                    )
                )
            else:
                raise ValueError("kind must be 'photo' or 'document'")
        return out

    def send_sticker(
        self,
        user: int | FakeUser,
        chat_id: int | None = None,
        reply_to: JsonDict | int | None = None,
        thread_id: int | None = None,
        *,
        emoji: str = "🙂",
    ) -> JsonDict:
        rec = self.new_file("sticker", b"RIFF....WEBPVP8 fake", mime_type="image/webp")
        rec.width = rec.height = 512
        sticker = {
            "file_id": rec.file_id,
            "file_unique_id": rec.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": rec.file_size,
        }
        return self._user_send(
            user, {"sticker": sticker}, chat_id=chat_id, reply_to=reply_to, thread_id=thread_id
        )

    def send_voice(
        self,
        user: int | FakeUser,
        chat_id: int | None = None,
        reply_to: JsonDict | int | None = None,
        thread_id: int | None = None,
        *,
        duration: int = 3,
        caption: str | None = None,
    ) -> JsonDict:
        rec = self.new_file("voice", b"OggS fake voice", mime_type="audio/ogg")
        rec.duration = duration
        body: JsonDict = {"voice": self.media_json(rec)}
        body.update(self._caption(caption))
        return self._user_send(user, body, chat_id=chat_id, reply_to=reply_to, thread_id=thread_id)

    def edit_text(self, user: int | FakeUser, message: JsonDict, new_text: str) -> JsonDict:
        """The user edits their own text message → edited_message update."""
        u = self._user(user)
        chat_id = int(message["chat"]["id"])
        stored = self._find(chat_id, int(message["message_id"]))
        if stored is None:
            raise AssertionError("message to edit not found")
        if stored.by_bot or stored.data.get("from", {}).get("id") != u.id:
            raise AssertionError("a user can only edit their own messages")
        if "text" in stored.data:
            stored.data["text"] = new_text
            ents = find_auto_entities(new_text, [])
            stored.data.pop("entities", None)
            if ents:
                stored.data["entities"] = ents
        else:
            stored.data["caption"] = new_text
            stored.data.pop("caption_entities", None)
        stored.data["edit_date"] = int(self.clock())
        if self._bot_sees(chat_id, stored.data):
            self._enqueue("edited_message", stored.data)
        self._pulse()
        return copy.deepcopy(stored.data)

    def _callback(self, user: FakeUser, stored: StoredMessage, data: str) -> str:
        chat_id = int(stored.data["chat"]["id"])
        if chat_id in self.groups:
            grp = self.groups[chat_id]
            if user.id not in grp.members and grp.username is None:  # public: anyone sees it
                raise AssertionError(f"user {user.id} is not a member of chat {chat_id}")
        elif chat_id != user.id:
            raise AssertionError(f"user {user.id} can't see private chat {chat_id}")
        qid = str(4_000_000_000_000_000_000 + secrets.randbelow(10**18))
        instance = int(hashlib.sha256(f"{chat_id}:{self.token}".encode()).hexdigest()[:15], 16)
        cq: JsonDict = {
            "id": qid,
            "from": user.to_user(),
            "message": copy.deepcopy(stored.data),
            "chat_instance": str(instance),
            "data": data,
        }
        self.callbacks[qid] = {"time": time.monotonic(), "query": cq}
        self._enqueue("callback_query", cq)
        return qid

    def press(self, user: int | FakeUser, message: JsonDict, label: str) -> str:
        """The user presses the inline button whose text equals (or contains) ``label`` in the
        *current* reply_markup of ``message``. Returns the callback query id."""
        u = self._user(user)
        chat_id = int(message["chat"]["id"])
        stored = self._find(chat_id, int(message["message_id"]))
        if stored is None:
            raise AssertionError(f"message {message['message_id']} not found in chat {chat_id}")
        buttons = [b for row in _inline_rows(stored.data) for b in row]
        labels = [str(b.get("text")) for b in buttons]
        matches = [b for b in buttons if b.get("text") == label]
        if not matches:
            matches = [b for b in buttons if label in str(b.get("text"))]
        if not matches:
            raise AssertionError(
                f"no inline button {label!r} in message {stored.data['message_id']} "
                f"(chat {chat_id}); available: {labels}"
            )
        if len(matches) > 1 and len({m["text"] for m in matches}) > 1:
            raise AssertionError(
                f"button label {label!r} is ambiguous: {[m['text'] for m in matches]}"
            )
        button = matches[0]
        if "callback_data" not in button:
            raise AssertionError(
                f"button {button['text']!r} has no callback_data (it is {sorted(button)}); "
                "pressing it would not reach the bot"
            )
        return self._callback(u, stored, str(button["callback_data"]))

    def press_data(self, user: int | FakeUser, chat_id: int, message_id: int, data: str) -> str:
        """A callback query with arbitrary (possibly forged) data for an existing message."""
        u = self._user(user)
        stored = self._find(chat_id, message_id)
        if stored is None:
            raise AssertionError(f"message {message_id} not found in chat {chat_id}")
        return self._callback(u, stored, data)

    # ------------------------------------------------------------------ driver: observing

    def messages(self, chat_id: int, *, thread_id: int | None = None) -> list[JsonDict]:
        """All (not deleted) messages of the chat in order, current state."""
        st = self.chats.get(chat_id)
        if st is None:
            return []
        out = [copy.deepcopy(m.data) for _, m in sorted(st.messages.items())]
        if thread_id is not None:
            out = [m for m in out if m.get("message_thread_id") == thread_id]
        return out

    def message(self, chat_id: int, message_id: int) -> JsonDict:
        stored = self._find(chat_id, message_id)
        if stored is None:
            raise KeyError(f"message {message_id} not found in chat {chat_id}")
        return copy.deepcopy(stored.data)

    def deleted_messages(self, chat_id: int) -> list[JsonDict]:
        st = self.chats.get(chat_id)
        return [copy.deepcopy(m.data) for _, m in sorted(st.deleted.items())] if st else []

    def bot_messages(self, chat_id: int) -> list[JsonDict]:
        st = self.chats.get(chat_id)
        if st is None:
            return []
        return [copy.deepcopy(st.messages[i].data) for i in st.bot_ids if i in st.messages]

    def reply_keyboard(self, msg: JsonDict) -> JsonDict | None:
        """The non-inline reply_markup (ReplyKeyboardMarkup/Remove/ForceReply) sent with it."""
        stored = self._find(int(msg["chat"]["id"]), int(msg["message_id"]))
        return copy.deepcopy(stored.reply_keyboard) if stored else None

    @staticmethod
    def text_of(msg: JsonDict) -> str:
        return str(msg.get("text") if msg.get("text") is not None else msg.get("caption") or "")

    @staticmethod
    def buttons(msg: JsonDict) -> list[str]:
        return [str(b.get("text")) for row in _inline_rows(msg) for b in row]

    def commands_for(self, user_id: int, chat_id: int | None = None) -> list[JsonDict]:
        """The command menu ``user_id`` sees in ``chat_id`` (their private chat by default),
        picked as Telegram does: the narrowest scope first, and within a scope the user's
        language before the scope's default."""
        user = self._user(user_id)
        chat = user_id if chat_id is None else chat_id
        if chat in self.groups:
            grp = self.groups[chat]
            admin = user_id in grp.admins or user_id == grp.owner
            scopes: list[JsonDict] = [
                {"type": "chat_member", "chat_id": chat, "user_id": user_id},
                *([{"type": "chat_administrators", "chat_id": chat}] if admin else []),
                {"type": "chat", "chat_id": chat},
                *([{"type": "all_chat_administrators"}] if admin else []),
                {"type": "all_group_chats"},
            ]
        else:
            scopes = [{"type": "chat", "chat_id": chat}, {"type": "all_private_chats"}]
        scopes.append({"type": "default"})
        for scope in scopes:
            for language in (user.language_code or "", ""):
                found = self.commands.get((repr(sorted(scope.items())), language))
                if found:
                    return copy.deepcopy(found)
        return []

    def pending_updates(self) -> list[JsonDict]:
        return copy.deepcopy(self.updates)

    def summary(self, chat_id: int, last: int = 10) -> str:
        st = self.chats.get(chat_id)
        if st is None:
            return f"chat {chat_id}: no messages"
        lines = [f"chat {chat_id} (last {last} messages):"]
        for mid, m in sorted(st.messages.items())[-last:]:
            who = "bot" if m.by_bot else str(m.data.get("from", {}).get("id"))
            flag = "" if not m.by_bot else (" [consumed]" if mid in st.consumed else " [new]")
            thread = m.data.get("message_thread_id")
            text = self.text_of(m.data).replace("\n", "\\n")
            kind = next((k for k in ("photo", "document", "sticker", "voice") if k in m.data), "")
            lines.append(
                f"  #{mid} {who}"
                + (f" thread={thread}" if thread else "")
                + (f" <{kind}>" if kind else "")
                + f": {text[:120]!r}{flag}"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        chat_id: int | str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (optionally only for ``chat_id``) fail with a
        Telegram-shaped error and have no effect."""
        self.faults.append(
            Fault(method.lower(), times, error_code, description, retry_after, chat_id)
        )

    def drop_connection_next(
        self, method: str, *, times: int = 1, chat_id: int | str | None = None
    ) -> None:
        """The next ``times`` calls of ``method`` get their connection closed without answer."""
        self.faults.append(Fault(method.lower(), times, 0, None, None, chat_id, drop=True))

    def answer_late(
        self, method: str, seconds: float, *, times: int = 1, chat_id: int | str | None = None
    ) -> None:
        """The next ``times`` calls of ``method`` take effect at once (a message is there for
        everyone to see) but their answer reaches the bot ``seconds`` later, as on a slow
        network or when Telegram is busy."""
        self.faults.append(Fault(method.lower(), times, 0, None, None, chat_id, late=seconds))

    def _take_fault(self, method: str, params: JsonDict) -> Fault | None:
        for f in self.faults:
            if f.method != method.lower() or f.times <= 0:
                continue
            if f.chat_id is not None and str(params.get("chat_id")) != str(f.chat_id):
                continue
            f.times -= 1
            if f.times <= 0:
                self.faults.remove(f)
            return f
        return None

    # ------------------------------------------------------------------ files

    def new_file(
        self,
        kind: str,
        content: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> FileRecord:
        fid, uid = _fake_file_id(kind)
        n = next(self._file_counter)
        folder = {
            "photo": "photos",
            "document": "documents",
            "sticker": "stickers",
            "voice": "voice",
        }.get(kind, kind + "s")
        ext = {"photo": "jpg", "sticker": "webp", "voice": "oga"}.get(kind)
        if ext is None:
            ext = file_name.rsplit(".", 1)[-1] if file_name and "." in file_name else "bin"
        rec = FileRecord(
            fid,
            uid,
            kind,
            content,
            file_name=file_name,
            mime_type=mime_type,
            file_path=f"{folder}/file_{n}.{ext}",
        )
        self.files[fid] = rec
        assert rec.file_path is not None
        self.files_by_path[rec.file_path] = rec
        if kind == "photo":
            sizes: list[JsonDict] = []
            for w, h in ((90, 51), (320, 180), (1280, 720)):
                sfid, suid = _fake_file_id("photo")
                sizes.append(
                    {
                        "file_id": sfid,
                        "file_unique_id": suid,
                        "file_size": len(content),
                        "width": w,
                        "height": h,
                    }
                )
                self.files[sfid] = rec
            rec.width, rec.height = 1280, 720
            rec.photo_sizes = sizes
        return rec

    def media_json(self, rec: FileRecord) -> JsonDict:
        d: JsonDict = {"file_id": rec.file_id, "file_unique_id": rec.file_unique_id}
        if rec.kind == "voice":
            d["duration"] = rec.duration or 1
        if rec.file_name and rec.kind == "document":
            d["file_name"] = rec.file_name
        if rec.mime_type:
            d["mime_type"] = rec.mime_type
        d["file_size"] = rec.file_size
        return d

    def file_bytes(self, file_id: str) -> bytes:
        return self.files[file_id].content

    # ------------------------------------------------------------------ topics

    def _create_topic(
        self,
        grp: FakeChat,
        name: str,
        icon_color: int,
        icon_custom_emoji_id: str | None,
        creator: FakeUser | None,
    ) -> Topic:
        sender = creator.to_user() if creator else self._bot_user_short()
        created: JsonDict = {"name": name, "icon_color": icon_color}
        if icon_custom_emoji_id:
            created["icon_custom_emoji_id"] = icon_custom_emoji_id
        st = self._chat_state(grp.id)
        tid = st.next_id
        topic = Topic(tid, name, icon_color, icon_custom_emoji_id)
        grp.topics[tid] = topic
        msg = self._store_message(
            grp.id, sender, {"forum_topic_created": created}, by_bot=creator is None, thread_id=tid
        )
        if creator is None:
            st.bot_ids.remove(msg.data["message_id"])  # service messages aren't "sent" text
        else:
            self._enqueue("message", msg.data)
        return topic

    def _service(self, grp: FakeChat, thread_id: int, content: JsonDict) -> None:
        msg = self._store_message(
            grp.id, self._bot_user_short(), content, by_bot=True, thread_id=thread_id
        )
        self._chat_state(grp.id).bot_ids.remove(msg.data["message_id"])


def _uid(u: int | FakeUser) -> int:
    return u.id if isinstance(u, FakeUser) else int(u)


def _strip_reply(data: JsonDict) -> JsonDict:
    d = copy.deepcopy(data)
    d.pop("reply_to_message", None)
    return d


def _inline_rows(msg: JsonDict) -> list[list[JsonDict]]:
    markup = msg.get("reply_markup") or {}
    rows = markup.get("inline_keyboard") or []
    return [list(r) for r in rows]


def _fake_jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + secrets.token_bytes(64) + b"\xff\xd9"


def _plain(record: Any) -> JsonDict:
    """A dataclass's fields by name (shallow: the caller turns sets, bytes and nested
    dataclasses into JSON)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _stored(raw: list[JsonDict]) -> dict[int, StoredMessage]:
    return {int(m["id"]): StoredMessage(**{k: v for k, v in m.items() if k != "id"}) for m in raw}


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
