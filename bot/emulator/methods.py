"""Bot API method implementations (everything but getUpdates, which lives in the server)."""

from __future__ import annotations

import copy
import itertools
import math
import mimetypes
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .html_parser import EntityParseError, finalize_text, parse_text, utf16_len
from .schema import ApiError, Schema, UploadedFile, bad_request
from .world import FakeChat, FileRecord, JsonDict, StoredMessage, World

__all__ = ["BotApi", "RateLimits", "UploadLimits"]

_TOKEN_CHARS = re.compile(r"^[a-z0-9_]{1,32}$")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_MEDIA_KEYS = ("photo", "document", "sticker", "voice", "audio", "video", "animation", "video_note")
_SEND_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendSticker",
        "sendVoice",
        "sendAudio",
        "sendVideo",
        "sendAnimation",
        "copyMessage",
        "forwardMessage",
    }
)
_MAX_FILE_DOWNLOAD = 20 * 1024 * 1024

Handler = Callable[[JsonDict], Any]


@dataclass
class RateLimits:
    """Telegram's flood limits as sliding windows ``(seconds, at most)``. Defaults approximate
    what Telegram applies: about one request a second in any one chat (a private chat
    tolerates a small burst), 20 messages a minute per group, 30 messages a second overall.

    The per-chat windows (``private``, ``group_requests``) count requests: an album or a
    ``copyMessages`` of 100 ids is one request there. ``group`` and ``overall`` count the
    messages a request posts; one posting more than a window holds goes only into an empty
    window (and fills it), rather than being refused for good.

    ``early``: how much earlier than the limit a request may arrive and still pass. Telegram's
    limits are approximate, and a bot that spaces its requests exactly is seen a few
    milliseconds off by the network.
    """

    private: list[tuple[float, int]] = field(default_factory=lambda: [(1.0, 3), (10.0, 12)])
    group_requests: list[tuple[float, int]] = field(default_factory=lambda: [(1.0, 1)])
    group: list[tuple[float, int]] = field(default_factory=lambda: [(60.0, 20)])
    overall: list[tuple[float, int]] = field(default_factory=lambda: [(1.0, 30)])
    early: float = 0.05


@dataclass
class UploadLimits:
    """What Telegram accepts as uploads, in bytes (tests may make them a few KB).

    ``files``: the uploaded files of one request together (Telegram's 50 MB for bots). Over
    it, the request is refused before it is read, with HTTP 413 and the JSON body
    ``{"ok": false, "error_code": 413, "description": "Request Entity Too Large"}``; aiogram
    raises ``TelegramEntityTooLarge`` (a ``TelegramNetworkError``). Only file parts count:
    the rest of a request is a few KB at most, so a test limit of a few KB still lets long
    texts through.

    ``photo``: one photo (Telegram's 10 MB). A larger one in ``sendPhoto`` or an album is
    refused with 400 ``Bad Request: file of size N bytes is too big for a photo; the maximum
    size is M bytes`` (TDLib's check), which aiogram raises as ``TelegramBadRequest``.
    """

    files: int = 50 * 1024 * 1024
    photo: int = 10 * 1024 * 1024


def _window_wait(
    sent: deque[float], windows: list[tuple[float, int]], count: int, now: float, early: float
) -> float:
    """Seconds until ``count`` more fit in every window of ``sent`` (0 when they fit now)."""
    longest = max((w for w, _ in windows), default=0.0)
    while sent and sent[0] <= now - longest:
        sent.popleft()
    wait = 0.0
    for window, limit in windows:
        span = window - early
        recent = [t for t in sent if t > now - span]
        excess = len(recent) + min(count, limit) - limit
        if excess > 0:
            wait = max(wait, recent[excess - 1] + span - now)
    return wait


def _record(sent: deque[float], windows: list[tuple[float, int]], count: int, now: float) -> None:
    # More than the largest window holds fills it: no more is needed to keep it closed.
    sent.extend(itertools.repeat(now, min(count, max((c for _, c in windows), default=0))))


class _Limiter:
    """Answers 429 ``retry_after`` as Telegram does when a bot floods, and counts them.

    After a 429 the chat stays closed for ``retry_after`` (Telegram's flood wait): a bot that
    does not wait it out is refused again."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock  # tests may drive it
        self.requests: dict[int, deque[float]] = {}
        self.messages: dict[int, deque[float]] = {}
        self.overall: deque[float] = deque()
        self.closed_until: dict[int, float] = {}
        self.refused: Counter[int] = Counter()

    def check(self, chat_id: int, is_group: bool, n: int) -> None:
        now = self.clock()
        limits = self.limits
        requests = self.requests.setdefault(chat_id, deque())
        messages = self.messages.setdefault(chat_id, deque()) if is_group else deque()
        per_chat = limits.group_requests if is_group else limits.private
        wait = max(
            self.closed_until.get(chat_id, now) - now,
            _window_wait(requests, per_chat, 1, now, limits.early),
            _window_wait(self.overall, limits.overall, n, now, limits.early),
        )
        if is_group:
            wait = max(wait, _window_wait(messages, limits.group, n, now, limits.early))
        if wait > 0:
            secs = max(1, math.ceil(wait))
            self.closed_until[chat_id] = max(self.closed_until.get(chat_id, now), now + secs)
            self.refused[chat_id] += 1
            raise ApiError(429, f"Too Many Requests: retry after {secs}", retry_after=secs)
        requests.append(now)
        if is_group:
            _record(messages, limits.group, n, now)
        _record(self.overall, limits.overall, n, now)

    @property
    def refused_total(self) -> int:
        return self.refused.total()


class BotApi:
    """Implements Bot API methods on top of a :class:`World`."""

    def __init__(
        self,
        world: World,
        schema: Schema,
        *,
        enforce_limits: bool = False,
        rate_limits: RateLimits | None = None,
        upload_limits: UploadLimits | None = None,
    ) -> None:
        self.w = world
        self.schema = schema
        self.enforce_limits = enforce_limits
        self.upload_limits = upload_limits or UploadLimits()
        self.limiter = _Limiter(rate_limits or RateLimits())
        self.files: dict[str, UploadedFile] = {}
        self.handlers: dict[str, Handler] = {
            "getMe": self.get_me,
            "logOut": lambda p: True,
            "close": lambda p: True,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "sendMessage": self.send_message,
            "sendPhoto": lambda p: self.send_media(p, "photo"),
            "sendDocument": lambda p: self.send_media(p, "document"),
            "sendSticker": lambda p: self.send_media(p, "sticker"),
            "sendVoice": lambda p: self.send_media(p, "voice"),
            "sendMediaGroup": self.send_media_group,
            "copyMessage": self.copy_message,
            "copyMessages": self.copy_messages,
            "forwardMessage": self.forward_message,
            "forwardMessages": self.forward_messages,
            "editMessageText": self.edit_message_text,
            "editMessageCaption": self.edit_message_caption,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "deleteMessages": self.delete_messages,
            "answerCallbackQuery": self.answer_callback_query,
            "getChat": self.get_chat,
            "getChatMember": self.get_chat_member,
            "getChatAdministrators": self.get_chat_administrators,
            "getChatMemberCount": self.get_chat_member_count,
            "getFile": self.get_file,
            "sendChatAction": self.send_chat_action,
            "createForumTopic": self.create_forum_topic,
            "editForumTopic": self.edit_forum_topic,
            "closeForumTopic": lambda p: self.close_reopen_topic(p, close=True),
            "reopenForumTopic": lambda p: self.close_reopen_topic(p, close=False),
            "deleteForumTopic": self.delete_forum_topic,
            "setMessageReaction": self.set_message_reaction,
        }

    # ================================================================== entry point

    def call(self, method: str, params: JsonDict, files: dict[str, UploadedFile]) -> Any:
        self.files = files
        handler = self.handlers.get(method)
        if handler is not None:
            return handler(params)
        returns = self.schema.methods[method].returns
        if returns == ("Boolean",) or returns == ("True",):
            # Setters we don't model (descriptions, menu buttons, pins, ...): accepted, but a
            # group the bot was removed from refuses them as it refuses everything.
            chat = params.get("chat_id")
            if (
                isinstance(chat, int | str)
                and str(chat).lstrip("-").isdigit()
                and int(chat) in self.w.groups
            ):
                self.resolve_chat(chat, send=False)
            return True
        raise ApiError(501, f"Not Implemented: FakeTelegram does not emulate {method}")

    # ================================================================== helpers

    def resolve_chat(self, value: Any, *, send: bool, read: bool = False) -> int:
        """Finds the chat a bot refers to; raises Telegram's errors for unknown/forbidden.

        ``read``: the method only reads the chat (getChat, getChatMember, the source of a copy),
        which a public group allows a bot that is not a member; anything else (sending,
        editing, deleting, managing topics) needs membership. A bot removed (banned) from a
        group is refused everything there (telegram-bot-api's ``check_chat_access``)."""
        chat_id: int | None = None
        if isinstance(value, int):
            chat_id = value
        elif isinstance(value, str):
            s = value.strip()
            if re.fullmatch(r"[+-]?\d+", s):
                chat_id = int(s)
            elif s.startswith("@"):
                for g in self.w.groups.values():
                    if g.username and g.username.lower() == s[1:].lower():
                        chat_id = g.id
                        break
        if chat_id is None:
            raise bad_request("chat not found")
        if chat_id == self.w.bot_user["id"]:
            if send:
                raise ApiError(403, "Forbidden: bot can't send messages to bots")
            return chat_id
        if chat_id in self.w.groups:
            grp = self.w.groups[chat_id]
            if grp.migrated_to is not None:
                raise ApiError(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    migrate_to_chat_id=grp.migrated_to,
                )
            if grp.bot_kicked:
                raise ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
            if not grp.bot_is_member and not (read and grp.username is not None):
                raise ApiError(403, "Forbidden: bot is not a member of the supergroup chat")
            self.w._chat_state(chat_id)
            return chat_id
        user = self.w.users.get(chat_id)
        if user is None:
            raise bad_request("chat not found")
        known = user.started or any(
            user.id in g.members and g.bot_is_member for g in self.w.groups.values()
        )
        if send:
            if user.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not user.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        elif not known:
            raise bad_request("chat not found")
        self.w._chat_state(chat_id)
        return chat_id

    def check_thread(
        self, chat_id: int, thread_id: int | None, reply: StoredMessage | None
    ) -> int | None:
        grp = self.w.groups.get(chat_id)
        if not thread_id:
            if reply is not None and grp is not None and grp.is_forum:
                return reply.data.get("message_thread_id")
            return None
        if grp is None:
            raise bad_request("message thread not found")
        if not grp.is_forum:
            if self.w._find(chat_id, thread_id) is None:
                raise bad_request("message thread not found")
            return None
        if thread_id == 1:
            return None
        topic = grp.topics.get(thread_id)
        if topic is None or topic.deleted:
            raise bad_request("message thread not found")
        if topic.closed and not grp.bot_can("can_manage_topics"):
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    def resolve_reply(self, chat_id: int, p: JsonDict) -> StoredMessage | None:
        rp = p.get("reply_parameters")
        raw_id = p.get("_reply_to_message_id")
        allow = bool(p.get("_allow_sending_without_reply"))
        target_chat = chat_id
        if rp:
            raw_id = rp.get("message_id")
            allow = bool(rp.get("allow_sending_without_reply"))
            if rp.get("chat_id") not in (None, ""):
                target_chat = self.resolve_chat(rp["chat_id"], send=False, read=True)
        if not raw_id:
            return None
        msg = self.w._find(target_chat, int(raw_id))
        if msg is None:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        if target_chat != chat_id:
            return None  # cross-chat replies: accepted, not modelled as external_reply
        return msg

    def format(
        self,
        text: str,
        parse_mode: str | None,
        entities: list[JsonDict] | None,
        *,
        limit: int,
        caption: bool,
    ) -> tuple[str, list[JsonDict]]:
        mode = (parse_mode or "").strip()
        if entities:
            plain = text
            ents = [c for c in (self._check_entity(e) for e in entities) if c is not None]
        else:
            if mode and mode.lower() not in ("html", "markdownv2", "markdown"):
                raise bad_request("unsupported parse_mode")
            try:
                plain, ents = parse_text(text, mode)
            except EntityParseError as exc:
                raise bad_request(f"can't parse entities: {exc}") from exc
        plain, ents = finalize_text(plain, ents)
        if utf16_len(plain) > limit:
            raise bad_request("message caption is too long" if caption else "message is too long")
        return plain, ents

    def _check_entity(self, e: JsonDict) -> JsonDict | None:
        kinds = {
            "mention",
            "hashtag",
            "cashtag",
            "bot_command",
            "url",
            "email",
            "phone_number",
            "bold",
            "italic",
            "underline",
            "strikethrough",
            "spoiler",
            "blockquote",
            "expandable_blockquote",
            "code",
            "pre",
            "text_link",
            "text_mention",
            "custom_emoji",
            "date_time",
        }
        if e.get("type") not in kinds:
            raise bad_request("can't parse entities: Unsupported entity type")
        out = dict(e.items())
        if e["type"] == "text_link" and not e.get("url"):
            return None
        if e["type"] == "text_mention" and not isinstance(e.get("user"), dict):
            return None
        return out

    def markup(self, p: JsonDict) -> tuple[JsonDict | None, JsonDict | None]:
        """Returns (inline markup for the Message, other reply keyboard)."""
        rm = p.get("reply_markup")
        if rm is None:
            return None, None
        if "inline_keyboard" in rm:
            rows = rm["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of '
                    "Arrays"
                )
            actions = (
                "url",
                "callback_data",
                "web_app",
                "login_url",
                "switch_inline_query",
                "switch_inline_query_current_chat",
                "switch_inline_query_chosen_chat",
                "copy_text",
                "callback_game",
                "pay",
            )
            for row in rows:
                for b in row:
                    if not isinstance(b, dict):
                        raise bad_request(
                            "can't parse inline keyboard button: InlineKeyboardButton must be "
                            "an Object"
                        )
                    if not isinstance(b.get("text"), str):
                        raise bad_request(
                            'can\'t parse inline keyboard button: Field "text" must be of type '
                            "String"
                        )
                    present = [a for a in actions if a in b]
                    if not present:
                        raise bad_request(
                            "can't parse inline keyboard button: Text buttons are unallowed in "
                            "the inline keyboard"
                        )
                    if "callback_data" in b:
                        data = b["callback_data"]
                        if not isinstance(data, str):
                            raise bad_request(
                                'can\'t parse inline keyboard button: Field "callback_data" '
                                "must be of type String"
                            )
                        if not 1 <= len(data.encode("utf-8")) <= 64:
                            raise bad_request("BUTTON_DATA_INVALID")
                    if "url" in b:
                        url = b["url"]
                        if not isinstance(url, str) or not re.match(
                            r"^(https?://|tg://)[^\s]+$|^[\w.-]+\.[a-z]{2,}(/\S*)?$", url, re.I
                        ):
                            raise bad_request("BUTTON_URL_INVALID")
                    if not b["text"]:
                        raise bad_request("BUTTON_TEXT_INVALID")
            return {"inline_keyboard": copy.deepcopy(rows)}, None
        if "keyboard" in rm:
            rows = rm["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    'field "keyboard" of the ReplyKeyboardMarkup should be an Array of Arrays'
                )
            return None, copy.deepcopy(rm)
        if "remove_keyboard" in rm or "force_reply" in rm:
            return None, copy.deepcopy(rm)
        raise bad_request("can't parse reply keyboard markup JSON object")

    def rate(self, chat_id: int, n: int = 1) -> None:
        if self.enforce_limits:
            self.limiter.check(chat_id, chat_id in self.w.groups, n)

    def input_file(self, value: Any, kind: str) -> FileRecord:
        """Resolves an InputFile-or-String parameter to a stored file."""
        if isinstance(value, str) and value.startswith("attach://"):
            name = value[len("attach://") :]
            if name not in self.files:
                raise bad_request("wrong file identifier/HTTP URL specified")
            value = self.files[name]
        if isinstance(value, UploadedFile):
            if not value.content:
                raise bad_request("file must be non-empty")
            size = len(value.content)
            if size > self.upload_limits.files:  # the HTTP side refuses it first
                raise ApiError(413, "Request Entity Too Large")
            if kind == "photo" and size > self.upload_limits.photo:
                raise bad_request(
                    f"file of size {size} bytes is too big for a photo; "
                    f"the maximum size is {self.upload_limits.photo} bytes"
                )
            mime = value.content_type
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(value.filename)[0] or "application/octet-stream"
            if kind == "photo":
                mime = "image/jpeg"
            return self.w.new_file(kind, value.content, file_name=value.filename, mime_type=mime)
        if not isinstance(value, str) or not value.strip():
            raise bad_request("wrong file identifier/HTTP URL specified")
        value = value.strip()
        if re.match(r"^https?://\S+$", value):
            name = value.rsplit("/", 1)[-1].split("?")[0] or "file"
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return self.w.new_file(
                kind, f"downloaded from {value}".encode(), file_name=name, mime_type=mime
            )
        rec = self.w.files.get(value)
        if rec is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if (rec.kind == "photo") != (kind == "photo") or (
            kind in ("sticker", "voice") and rec.kind != kind
        ):
            raise bad_request("type of file mismatch")
        return rec

    def media_content(self, rec: FileRecord, kind: str) -> JsonDict:
        if kind == "photo":
            return {"photo": copy.deepcopy(rec.photo_sizes)}
        if kind == "sticker":
            return {
                "sticker": {
                    "file_id": rec.file_id,
                    "file_unique_id": rec.file_unique_id,
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "file_size": rec.file_size,
                }
            }
        return {kind: self.w.media_json(rec)}

    def caption_content(self, p: JsonDict) -> JsonDict:
        if p.get("caption") in (None, ""):
            return {}
        cap, ents = self.format(
            p["caption"], p.get("parse_mode"), p.get("caption_entities"), limit=1024, caption=True
        )
        out: JsonDict = {}
        if cap:
            out["caption"] = cap
            if ents:
                out["caption_entities"] = ents
        if p.get("show_caption_above_media"):
            out["show_caption_above_media"] = True
        return out

    def deliver(
        self,
        chat_id: int,
        content: JsonDict,
        p: JsonDict,
        *,
        inline: JsonDict | None,
        keyboard: JsonDict | None,
        reply: StoredMessage | None,
        thread: int | None,
        at: float | None = None,
    ) -> StoredMessage:
        """Stores what the bot sent. ``at``: the moment of the request when one request posts
        several messages (an album, copyMessages): Telegram posts them at one moment."""
        if inline is not None:
            content["reply_markup"] = inline
        if p.get("has_spoiler"):
            content["has_media_spoiler"] = True
        if p.get("protect_content"):
            content["has_protected_content"] = True
        msg = self.w._store_message(
            chat_id,
            self.w._bot_user_short(),
            content,
            by_bot=True,
            thread_id=thread,
            reply_to=reply,
        )
        msg.reply_keyboard = keyboard
        if at is not None:
            msg.sent_at = at
        return msg

    def _prepare_send(self, p: JsonDict) -> tuple[int, StoredMessage | None, int | None]:
        chat_id = self.resolve_chat(p["chat_id"], send=True)
        reply = self.resolve_reply(chat_id, p)
        thread = self.check_thread(chat_id, p.get("message_thread_id"), reply)
        if (
            reply is not None
            and thread is not None
            and reply.data.get("message_thread_id", thread) != thread
        ):
            raise bad_request("message to be replied not found")
        return chat_id, reply, thread

    def _edit_target(self, p: JsonDict) -> tuple[int, StoredMessage]:
        if p.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        if p.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        if not p.get("message_id"):
            raise bad_request("message identifier is not specified")
        chat_id = self.resolve_chat(p["chat_id"], send=False)
        msg = self.w._find(chat_id, int(p["message_id"]))
        if msg is None:
            raise bad_request("message to edit not found")
        if not msg.by_bot:
            raise bad_request("message can't be edited")
        return chat_id, msg

    # ================================================================== methods

    def get_me(self, p: JsonDict) -> JsonDict:
        return copy.deepcopy(self.w.bot_user)

    def set_webhook(self, p: JsonDict) -> bool:
        url = p.get("url", "")
        if not url:
            self.w.webhook = None
            return True
        local_http = self.w.allow_http_webhooks and re.match(
            r"^http://(127\.0\.0\.1|localhost)(:\d+)?/", url, re.IGNORECASE
        )
        if not url.lower().startswith("https://") and not local_http:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if p.get("drop_pending_updates"):
            self.w.updates.clear()
        if p.get("allowed_updates") is not None:
            self.w.allowed_updates = _allowed(p["allowed_updates"])
        self.w.webhook = {
            "url": url,
            "max_connections": p.get("max_connections", 40),
            "secret_token": p.get("secret_token"),
        }
        return True

    def delete_webhook(self, p: JsonDict) -> bool:
        self.w.webhook = None
        if p.get("drop_pending_updates"):
            self.w.updates.clear()
        return True

    def get_webhook_info(self, p: JsonDict) -> JsonDict:
        info: JsonDict = {
            "url": self.w.webhook["url"] if self.w.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.w.updates),
        }
        if self.w.webhook:
            info["max_connections"] = self.w.webhook["max_connections"]
            if self.w.webhook.get("last_error_date"):
                info["last_error_date"] = self.w.webhook["last_error_date"]
                info["last_error_message"] = self.w.webhook["last_error_message"]
        return info

    def _scope_key(self, p: JsonDict) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        key = dict(scope)
        if "chat_id" in key:
            key["chat_id"] = self.resolve_chat(key["chat_id"], send=False)
        return (repr(sorted(key.items())), p.get("language_code") or "")

    def set_my_commands(self, p: JsonDict) -> bool:
        cmds = p["commands"]
        if len(cmds) > 100:
            raise bad_request("too much commands specified")
        out = []
        for c in cmds:
            cmd = str(c["command"]).lstrip("/")
            if not _TOKEN_CHARS.match(cmd):
                raise bad_request("BOT_COMMAND_INVALID")
            desc = str(c["description"])
            if not 1 <= len(desc) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            out.append({"command": cmd, "description": desc})
        key = self._scope_key(p)
        if out:
            self.w.commands[key] = out
        else:
            self.w.commands.pop(key, None)
        return True

    def get_my_commands(self, p: JsonDict) -> list[JsonDict]:
        return copy.deepcopy(self.w.commands.get(self._scope_key(p), []))

    def delete_my_commands(self, p: JsonDict) -> bool:
        self.w.commands.pop(self._scope_key(p), None)
        return True

    def send_message(self, p: JsonDict) -> JsonDict:
        text, ents = self.format(
            p["text"], p.get("parse_mode"), p.get("entities"), limit=4096, caption=False
        )
        inline, keyboard = self.markup(p)
        chat_id, reply, thread = self._prepare_send(p)
        if not text:
            raise bad_request("message text is empty")
        self.rate(chat_id)
        content: JsonDict = {"text": text}
        if ents:
            content["entities"] = ents
        if p.get("link_preview_options"):
            content["link_preview_options"] = p["link_preview_options"]
        msg = self.deliver(
            chat_id, content, p, inline=inline, keyboard=keyboard, reply=reply, thread=thread
        )
        return copy.deepcopy(msg.data)

    def send_media(self, p: JsonDict, kind: str) -> JsonDict:
        caption = self.caption_content(p) if kind != "sticker" else {}
        inline, keyboard = self.markup(p)
        chat_id, reply, thread = self._prepare_send(p)
        rec = self.input_file(p[kind], kind)
        self.rate(chat_id)
        content = self.media_content(rec, kind)
        content.update(caption)
        msg = self.deliver(
            chat_id, content, p, inline=inline, keyboard=keyboard, reply=reply, thread=thread
        )
        return copy.deepcopy(msg.data)

    def send_media_group(self, p: JsonDict) -> list[JsonDict]:
        media = p["media"]
        if not media:
            raise bad_request("media must be non-empty")
        if len(media) > 10:
            raise bad_request("Too many messages to send as an album")
        kinds = {m["type"] for m in media}
        if len(kinds) > 1 and kinds & {"document", "audio"}:
            raise bad_request(
                f"{sorted(kinds & {'document', 'audio'})[0]} can't be mixed with other media types"
            )
        chat_id, reply, thread = self._prepare_send(p)
        prepared: list[tuple[FileRecord, str, JsonDict]] = []
        for item in media:
            kind = item["type"]
            if kind not in ("photo", "document"):
                kind = "document" if kind == "audio" else kind
            caption = self.caption_content(item)
            prepared.append((self.input_file(item["media"], kind), kind, caption))
        self.rate(chat_id, len(prepared))
        group_id = str(13_000_000_000_000_000 + int(time.time() * 1000) % 10**15)
        out = []
        at = time.monotonic()
        for rec, kind, caption in prepared:
            content = self.media_content(rec, kind)
            content["media_group_id"] = group_id
            content.update(caption)
            msg = self.deliver(
                chat_id, content, p, inline=None, keyboard=None, reply=reply, thread=thread, at=at
            )
            out.append(copy.deepcopy(msg.data))
        return out

    def _source(self, p: JsonDict, message_id: int, what: str) -> StoredMessage:
        from_chat = self.resolve_chat(p["from_chat_id"], send=False, read=True)
        src = self.w._find(from_chat, message_id)
        if src is None:
            raise bad_request(f"message to {what} not found")
        if not any(k in src.data for k in ("text", *_MEDIA_KEYS)):
            raise bad_request(f"message can't be {'copied' if what == 'copy' else 'forwarded'}")
        return src

    def _copied_content(self, src: StoredMessage, p: JsonDict, *, single: bool) -> JsonDict:
        content: JsonDict = {}
        for k in (
            "text",
            "entities",
            *_MEDIA_KEYS,
            "caption",
            "caption_entities",
            "show_caption_above_media",
            "has_media_spoiler",
        ):
            if k in src.data:
                content[k] = copy.deepcopy(src.data[k])
        if "text" not in content:
            if p.get("remove_caption"):
                content.pop("caption", None)
                content.pop("caption_entities", None)
            elif single and p.get("caption") is not None:
                content.pop("caption", None)
                content.pop("caption_entities", None)
                content.update(self.caption_content(p))
        return content

    def copy_message(self, p: JsonDict) -> JsonDict:
        src = self._source(p, int(p["message_id"]), "copy")
        inline, keyboard = self.markup(p)
        chat_id, reply, thread = self._prepare_send(p)
        content = self._copied_content(src, p, single=True)
        self.rate(chat_id)
        msg = self.deliver(
            chat_id, content, p, inline=inline, keyboard=keyboard, reply=reply, thread=thread
        )
        return {"message_id": msg.data["message_id"]}

    def _many(self, p: JsonDict, what: str) -> list[StoredMessage]:
        ids = [int(i) for i in p["message_ids"]]
        if not ids:
            raise bad_request("message identifiers are not specified")
        if len(ids) > 100:
            raise bad_request("too many messages")
        if any(b <= a for a, b in itertools.pairwise(ids)):
            raise bad_request("message identifiers must be in a strictly increasing order")
        from_chat = self.resolve_chat(p["from_chat_id"], send=False, read=True)
        found = [m for m in (self.w._find(from_chat, i) for i in ids) if m is not None]
        found = [m for m in found if any(k in m.data for k in ("text", *_MEDIA_KEYS))]
        if not found:
            raise bad_request(f"messages to {what} not found")
        return found

    def copy_messages(self, p: JsonDict) -> list[JsonDict]:
        sources = self._many(p, "copy")
        chat_id, _reply, thread = self._prepare_send(p)
        self.rate(chat_id, len(sources))
        groups: dict[str, str] = {}
        out = []
        at = time.monotonic()
        for src in sources:
            content = self._copied_content(src, p, single=False)
            gid = src.data.get("media_group_id")
            if gid:
                content["media_group_id"] = groups.setdefault(
                    gid, str(14_000_000_000_000_000 + len(groups) + int(time.time() * 1000))
                )
            msg = self.deliver(
                chat_id, content, p, inline=None, keyboard=None, reply=None, thread=thread, at=at
            )
            out.append({"message_id": msg.data["message_id"]})
        return out

    def _forward_content(self, src: StoredMessage) -> JsonDict:
        content = self._copied_content(src, {}, single=False)
        if "forward_origin" in src.data:
            content["forward_origin"] = copy.deepcopy(src.data["forward_origin"])
        else:
            content["forward_origin"] = {
                "type": "user",
                "sender_user": copy.deepcopy(src.data["from"]),
                "date": src.data["date"],
            }
        if src.data.get("media_group_id"):
            content["media_group_id"] = src.data["media_group_id"]
        return content

    def forward_message(self, p: JsonDict) -> JsonDict:
        src = self._source(p, int(p["message_id"]), "forward")
        chat_id, _reply, thread = self._prepare_send(p)
        self.rate(chat_id)
        msg = self.deliver(
            chat_id,
            self._forward_content(src),
            p,
            inline=None,
            keyboard=None,
            reply=None,
            thread=thread,
        )
        return copy.deepcopy(msg.data)

    def forward_messages(self, p: JsonDict) -> list[JsonDict]:
        sources = self._many(p, "forward")
        chat_id, _reply, thread = self._prepare_send(p)
        self.rate(chat_id, len(sources))
        out = []
        at = time.monotonic()
        for src in sources:
            msg = self.deliver(
                chat_id,
                self._forward_content(src),
                p,
                inline=None,
                keyboard=None,
                reply=None,
                thread=thread,
                at=at,
            )
            out.append({"message_id": msg.data["message_id"]})
        return out

    def _apply_edit(
        self, msg: StoredMessage, changes: JsonDict, drop: tuple[str, ...], inline: JsonDict | None
    ) -> JsonDict:
        before = {k: msg.data.get(k) for k in (*changes, *drop, "reply_markup")}
        after = dict(changes)
        for k in drop:
            after[k] = None
        after["reply_markup"] = inline
        if all(before.get(k) == after.get(k) for k in before):
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        for k, v in after.items():
            if v is None:
                msg.data.pop(k, None)
            else:
                msg.data[k] = copy.deepcopy(v)
        msg.data["edit_date"] = int(self.w.clock())
        self.w._pulse()
        return copy.deepcopy(msg.data)

    def edit_message_text(self, p: JsonDict) -> JsonDict:
        if p.get("text") in (None, ""):
            raise bad_request("message text is empty")
        text, ents = self.format(
            p["text"], p.get("parse_mode"), p.get("entities"), limit=4096, caption=False
        )
        if not text:
            raise bad_request("message text is empty")
        inline, _kb = self.markup(p)
        _chat_id, msg = self._edit_target(p)
        if "text" not in msg.data:
            raise bad_request("there is no text in the message to edit")
        changes: JsonDict = {"text": text, "entities": ents or None}
        return self._apply_edit(msg, changes, (), inline)

    def edit_message_caption(self, p: JsonDict) -> JsonDict:
        caption = self.caption_content(p)
        inline, _kb = self.markup(p)
        _chat_id, msg = self._edit_target(p)
        if not any(k in msg.data for k in _MEDIA_KEYS if k != "sticker"):
            raise bad_request("there is no caption in the message to edit")
        changes: JsonDict = {
            "caption": caption.get("caption"),
            "caption_entities": caption.get("caption_entities"),
        }
        return self._apply_edit(msg, changes, (), inline)

    def edit_message_reply_markup(self, p: JsonDict) -> JsonDict:
        inline, _kb = self.markup(p)
        _chat_id, msg = self._edit_target(p)
        return self._apply_edit(msg, {}, (), inline)

    def set_message_reaction(self, p: JsonDict) -> bool:
        chat_id = self.resolve_chat(p["chat_id"], send=False)
        key = (chat_id, int(p["message_id"]))
        if self.w._find(*key) is None:
            raise bad_request("message to react not found")
        emoji = []
        for reaction in p.get("reaction") or []:
            if reaction.get("type") != "emoji":
                raise bad_request("REACTION_INVALID")
            emoji.append(str(reaction.get("emoji")))
        if len(emoji) > 1:
            raise bad_request("REACTIONS_TOO_MANY")
        if emoji:
            self.w.reactions[key] = emoji
        else:
            self.w.reactions.pop(key, None)
        self.w._pulse()
        return True

    def _delete_one(self, chat_id: int, message_id: int) -> None:
        st = self.w._chat_state(chat_id)
        msg = st.messages.get(message_id)
        if msg is None:
            raise bad_request("message to delete not found")
        grp = self.w.groups.get(chat_id)
        if grp is not None:
            if "forum_topic_created" in msg.data:
                raise bad_request("message can't be deleted")
            if not msg.by_bot and not grp.bot_can("can_delete_messages"):
                raise bad_request("message can't be deleted")
        st.deleted[message_id] = st.messages.pop(message_id)
        self.w._pulse()

    def delete_message(self, p: JsonDict) -> bool:
        chat_id = self.resolve_chat(p["chat_id"], send=False)
        self._delete_one(chat_id, int(p["message_id"]))
        return True

    def delete_messages(self, p: JsonDict) -> bool:
        chat_id = self.resolve_chat(p["chat_id"], send=False)
        ids = [int(i) for i in p["message_ids"]]
        if not 1 <= len(ids) <= 100:
            raise bad_request("message identifiers are not specified")
        for mid in ids:
            try:
                self._delete_one(chat_id, mid)
            except ApiError:
                continue
        return True

    def answer_callback_query(self, p: JsonDict) -> bool:
        qid = str(p["callback_query_id"])
        if qid not in self.w.callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if p.get("url"):
            raise bad_request("URL_INVALID")
        if utf16_len(str(p.get("text") or "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")  # Telegram: "0-200 characters"
        self.w.callbacks.pop(qid)
        self.w.answers[qid] = {
            "text": p.get("text"),
            "show_alert": bool(p.get("show_alert", False)),
            "url": p.get("url"),
            "cache_time": p.get("cache_time", 0),
        }
        self.w._pulse()
        return True

    def get_chat(self, p: JsonDict) -> JsonDict:
        chat_id = self.resolve_chat(p["chat_id"], send=False, read=True)
        if chat_id == self.w.bot_user["id"]:
            info: JsonDict = {
                "id": chat_id,
                "type": "private",
                "first_name": self.w.bot_user["first_name"],
                "username": self.w.bot_user["username"],
            }
        else:
            info = self.w.chat_json(chat_id)
        info.update(
            {
                "accent_color_id": chat_id % 7 if chat_id > 0 else 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": True,
                    "limited_gifts": True,
                    "unique_gifts": True,
                    "premium_subscription": True,
                    "gifts_from_channels": True,
                },
            }
        )
        if chat_id in self.w.groups:
            info["permissions"] = {
                "can_send_messages": True,
                "can_send_audios": True,
                "can_send_documents": True,
                "can_send_photos": True,
                "can_send_videos": True,
                "can_send_video_notes": True,
                "can_send_voice_notes": True,
                "can_send_polls": True,
                "can_send_other_messages": True,
                "can_add_web_page_previews": True,
                "can_change_info": False,
                "can_invite_users": True,
                "can_pin_messages": False,
                "can_manage_topics": False,
            }
        return info

    def _member(self, grp: FakeChat | None, user_id: int) -> JsonDict:
        if user_id == self.w.bot_user["id"]:
            if grp is not None:
                return self.w._bot_member_json(grp)
            return {"status": "member", "user": self.w._bot_user_short()}
        if user_id not in self.w.users:
            raise bad_request("user not found")
        user = self.w.users[user_id].to_user()
        if grp is None:
            return {"status": "member", "user": user}
        if grp.owner == user_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in grp.admins:
            rights = dict(DEFAULT_RIGHTS_ADMIN)
            return _admin(user, rights, can_be_edited=False)
        if user_id in grp.members:
            return {"status": "member", "user": user}
        return {"status": "left", "user": user}

    def get_chat_member(self, p: JsonDict) -> JsonDict:
        chat_id = self.resolve_chat(p["chat_id"], send=False, read=True)
        user_id = int(p["user_id"])
        grp = self.w.groups.get(chat_id)
        if grp is None and user_id not in (chat_id, self.w.bot_user["id"]):
            raise bad_request("user not found")
        return self._member(grp, user_id)

    def get_chat_administrators(self, p: JsonDict) -> list[JsonDict]:
        chat_id = self.resolve_chat(p["chat_id"], send=False, read=True)
        grp = self.w.groups.get(chat_id)
        if grp is None:
            raise bad_request("there are no administrators in the private chat")
        out = []
        if grp.owner is not None:
            out.append(self._member(grp, grp.owner))
        for uid in sorted(grp.admins):
            if uid != grp.owner:
                out.append(self._member(grp, uid))
        if grp.bot_rights is not None and grp.bot_is_member:
            out.append(self._member(grp, self.w.bot_user["id"]))
        return out

    def get_chat_member_count(self, p: JsonDict) -> int:
        chat_id = self.resolve_chat(p["chat_id"], send=False, read=True)
        grp = self.w.groups.get(chat_id)
        if grp is None:
            return 2
        return len(grp.members) + (1 if grp.bot_is_member else 0)

    def get_file(self, p: JsonDict) -> JsonDict:
        fid = str(p["file_id"])
        rec = self.w.files.get(fid)
        if rec is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if rec.file_size > _MAX_FILE_DOWNLOAD:
            raise bad_request("file is too big")
        unique = rec.file_unique_id
        if rec.photo_sizes:
            for s in rec.photo_sizes:
                if s["file_id"] == fid:
                    unique = s["file_unique_id"]
        return {
            "file_id": fid,
            "file_unique_id": unique,
            "file_size": rec.file_size,
            "file_path": rec.file_path,
        }

    def send_chat_action(self, p: JsonDict) -> bool:
        action = str(p["action"])
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        chat_id = self.resolve_chat(p["chat_id"], send=True)
        thread = self.check_thread(chat_id, p.get("message_thread_id"), None)
        self.w.chat_actions.append((chat_id, action, thread))
        return True

    # ------------------------------------------------------------------ forum topics

    def _forum(self, p: JsonDict) -> FakeChat:
        chat_id = self.resolve_chat(p["chat_id"], send=False)
        grp = self.w.groups.get(chat_id)
        if grp is None or not grp.is_forum:
            raise bad_request("the chat is not a forum")
        return grp

    def _topic(self, grp: FakeChat, p: JsonDict) -> Any:
        tid = int(p["message_thread_id"])
        topic = grp.topics.get(tid)
        if topic is None or topic.deleted:
            raise bad_request("message thread not found")
        return topic

    def create_forum_topic(self, p: JsonDict) -> JsonDict:
        grp = self._forum(p)
        if not grp.bot_can("can_manage_topics"):
            raise bad_request("not enough rights to create a topic")
        name = str(p["name"])
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_INVALID")
        topic = self.w._create_topic(
            grp, name, int(p.get("icon_color", 0x6FB9F0)), p.get("icon_custom_emoji_id"), None
        )
        return topic.to_json()

    def edit_forum_topic(self, p: JsonDict) -> bool:
        grp = self._forum(p)
        topic = self._topic(grp, p)
        if not grp.bot_can("can_manage_topics"):
            raise bad_request("not enough rights to edit a topic")
        changed: JsonDict = {}
        if p.get("name") and p["name"] != topic.name:
            if len(p["name"]) > 128:
                raise bad_request("TOPIC_TITLE_INVALID")
            topic.name = changed["name"] = p["name"]
        if "icon_custom_emoji_id" in p and p["icon_custom_emoji_id"] != topic.icon_custom_emoji_id:
            topic.icon_custom_emoji_id = p["icon_custom_emoji_id"] or None
            changed["icon_custom_emoji_id"] = p["icon_custom_emoji_id"]
        if not changed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        self.w._service(grp, topic.thread_id, {"forum_topic_edited": changed})
        return True

    def close_reopen_topic(self, p: JsonDict, *, close: bool) -> bool:
        grp = self._forum(p)
        topic = self._topic(grp, p)
        if not grp.bot_can("can_manage_topics"):
            raise bad_request("not enough rights to manage topics")
        if topic.closed == close:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = close
        key = "forum_topic_closed" if close else "forum_topic_reopened"
        self.w._service(grp, topic.thread_id, {key: {}})
        return True

    def delete_forum_topic(self, p: JsonDict) -> bool:
        grp = self._forum(p)
        topic = self._topic(grp, p)
        if not grp.bot_can("can_delete_messages"):
            raise bad_request("not enough rights to delete a topic")
        topic.deleted = True
        st = self.w._chat_state(grp.id)
        for mid in [
            m for m, s in st.messages.items() if s.data.get("message_thread_id") == topic.thread_id
        ]:
            st.deleted[mid] = st.messages.pop(mid)
        self.w._pulse()
        return True


DEFAULT_RIGHTS_ADMIN: dict[str, bool] = {
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_pin_messages": True,
    "can_manage_topics": True,
    "can_send_welcome_messages": False,
}


def _admin(user: JsonDict, rights: dict[str, bool], *, can_be_edited: bool) -> JsonDict:
    d: JsonDict = {"status": "administrator", "user": user, "can_be_edited": can_be_edited}
    for k in DEFAULT_RIGHTS_ADMIN:
        d[k] = bool(rights.get(k, False))
    return d


def _allowed(value: list[str]) -> frozenset[str]:
    from .world import DEFAULT_ALLOWED

    return frozenset(value) if value else DEFAULT_ALLOWED
