"""The Telegram transport: a recorded delivery becomes Bot API calls, and an API error becomes a
:class:`~bot.delivery.outcomes.Failure` the sender knows what to do with.

Texts longer than Telegram takes (4096 characters after entities are parsed) are split here,
once, for every sender of long texts (a history, ``/ticket``, ``/macros``, a long dispute
reason): the parts go out in order and the delivery remembers how many were sent, so a retry
after a failure halfway sends only the rest.
"""

from __future__ import annotations

import base64
import html
from html.parser import HTMLParser
from typing import Any

from aiogram import methods
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import BufferedInputFile, Message, MessageId

from bot.db.models import Delivery
from bot.delivery.outcomes import Failure, FailureKind

# Telegram counts a text's length in UTF-16 code units (an emoji is two), after parsing.
TEXT_LIMIT = 4096
PART_LIMIT = 4000  # parts are cut a little shorter: room for what parsing may count otherwise
MAX_BACKOFF = 300.0
# A group that refuses the bot (removed from it): its deliveries wait, and are tried again
# this often until the bot is back (or at once, when it is added back: see Sender.resume).
ACCESS_RETRY = 60.0
_SINGLE_MEDIA: dict[str, type[TelegramMethod[Any]]] = {
    "photo": methods.SendPhoto,
    "video": methods.SendVideo,
    "document": methods.SendDocument,
    "audio": methods.SendAudio,
}


def _upload(value: Any) -> Any:
    """Files travel in the outbox as base64 (the payload is JSON) and leave as uploads."""
    if isinstance(value, dict) and "__file_b64" in value:
        return BufferedInputFile(base64.b64decode(value["__file_b64"]), value["filename"])
    return value


def build_calls(delivery: Delivery, payload: dict[str, Any]) -> list[TelegramMethod[Any]]:
    """The calls that make ``delivery`` (usually one; a long text several)."""
    payload = {key: _upload(value) for key, value in payload.items()}
    if delivery.method == "SendMediaGroup" and len(payload.get("media") or ()) == 1:
        # An "album" that turned out to have one part: Telegram wants 2-10 items.
        return [_single_media(payload)]
    if delivery.method == "SendMessage" and _too_long(payload):
        return [methods.SendMessage.model_validate(part) for part in _split_message(payload)]
    if delivery.method == "EditMessageText" and _too_long(payload):
        # An edit cannot become two messages: the text is cut, visibly.
        payload["text"] = split_html(payload["text"], PART_LIMIT)[0] + "…"
    method_class: type[TelegramMethod[Any]] = getattr(methods, delivery.method)
    return [method_class.model_validate(payload)]


def _single_media(payload: dict[str, Any]) -> TelegramMethod[Any]:
    item = dict(payload["media"][0])
    kind = item.pop("type")
    call: dict[str, Any] = {"chat_id": payload["chat_id"], kind: item.pop("media"), **item}
    for key in ("reply_parameters", "message_thread_id"):
        if key in payload:
            call[key] = payload[key]
    return _SINGLE_MEDIA[kind].model_validate(call)


def _too_long(payload: dict[str, Any]) -> bool:
    text = payload.get("text")
    # The markup's own length first: it is never shorter than the visible text.
    return isinstance(text, str) and units(text) > TEXT_LIMIT and visible_length(text) > TEXT_LIMIT


def _split_message(payload: dict[str, Any]) -> list[dict[str, Any]]:
    parts = split_html(payload["text"], PART_LIMIT)
    calls = []
    for index, text in enumerate(parts):
        call = {k: v for k, v in payload.items() if k not in ("reply_markup", "reply_parameters")}
        call["text"] = text
        if index == 0 and "reply_parameters" in payload:
            call["reply_parameters"] = payload["reply_parameters"]
        if index == len(parts) - 1 and "reply_markup" in payload:
            call["reply_markup"] = payload["reply_markup"]  # the buttons under the last part
        calls.append(call)
    return calls


class _Tokens(HTMLParser):
    """Our own HTML (``parse_mode=HTML``, user text quoted): tags and the text between them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple[str, str, str]] = []  # (kind, tag, raw)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append(("start", tag, self.get_starttag_text() or f"<{tag}>"))

    def handle_endtag(self, tag: str) -> None:
        self.tokens.append(("end", tag, f"</{tag}>"))

    def handle_data(self, data: str) -> None:
        self.tokens.append(("text", "", data))


def _tokens(text: str) -> list[tuple[str, str, str]]:
    parser = _Tokens()
    parser.feed(text)
    parser.close()
    return parser.tokens


def units(text: str) -> int:
    """``text``'s length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _fitting(text: str, room: int) -> int:
    """How many of ``text``'s characters fit in ``room`` code units."""
    if len(text) <= room and text.isascii():
        return len(text)
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > room:
            return index
    return len(text)


def visible_length(text: str) -> int:
    """The visible text's length in UTF-16 code units."""
    return sum(units(raw) for kind, _, raw in _tokens(text) if kind == "text")


def split_html(text: str, limit: int) -> list[str]:
    """Cut HTML into parts of at most ``limit`` visible UTF-16 code units, at line ends where
    there are any, closing the tags open at a cut and opening them again in the next part."""
    parts: list[str] = []
    open_tags: list[tuple[str, str]] = []  # (tag, its start tag as written)
    head: list[str] = []  # the part so far, up to its last line end
    head_open: list[tuple[str, str]] = []  # the tags open at that line end
    head_size = 0
    line: list[str] = []  # what came after that line end
    line_size = 0

    def emit(body: list[str], still_open: list[tuple[str, str]]) -> None:
        closing = "".join(f"</{tag}>" for tag, _ in reversed(still_open))
        parts.append("".join(body) + closing)

    for kind, tag, raw in _tokens(text):
        if kind == "start":
            line.append(raw)
            open_tags.append((tag, raw))
            continue
        if kind == "end":
            line.append(raw)
            for index in range(len(open_tags) - 1, -1, -1):
                if open_tags[index][0] == tag:
                    del open_tags[index]
                    break
            continue
        rest = raw
        while rest:
            room = limit - head_size - line_size
            fits = _fitting(rest, room) if room > 0 else 0  # characters
            newline = rest[:fits].rfind("\n")
            if fits == len(rest):
                piece, rest = rest, ""
            elif newline >= 0:
                piece, rest = rest[: newline + 1], rest[newline + 1 :]  # whole lines that fit
            elif head_size and line_size + units(rest.split("\n", 1)[0]) <= limit:
                # The line does not fit here but fits a part of its own: cut before it.
                emit(head, head_open)
                head, head_size = [start for _, start in head_open], 0
                continue
            else:
                # A line longer than a part: cut it after a word if one ends late enough.
                space = rest[:fits].rfind(" ")
                cut = space + 1 if space > fits // 2 else fits
                line.append(html.escape(rest[:cut], quote=False))
                rest = rest[cut:]
                emit(head + line, open_tags)
                head, head_size, head_open = [start for _, start in open_tags], 0, list(open_tags)
                line, line_size = [], 0
                continue
            line.append(html.escape(piece, quote=False))
            line_size += units(piece)
            if "\n" in piece:
                # Everything up to here is whole lines: it may close a part.
                head += line
                head_size += line_size
                head_open = list(open_tags)
                line, line_size = [], 0
    body = head + line
    if head_size + line_size or not parts:
        parts.append("".join(body))
    return [part for part in parts if part.strip()] or parts[:1]


def message_ids(result: Any) -> list[int]:
    items = result if isinstance(result, list) else [result]
    return [item.message_id for item in items if isinstance(item, Message | MessageId)]


def harmless(exc: TelegramBadRequest) -> bool:
    """Answers that mean the call has nothing left to do."""
    return any(
        text in exc.message
        for text in ("message is not modified", "TOPIC_NOT_MODIFIED", "TOPIC_CLOSED")
    )


def classify(exc: BaseException, delivery: Delivery) -> Failure:
    """What an API error means for the delivery that met it."""
    backoff = min(MAX_BACKOFF, 2.0 ** min(delivery.attempts, 9))
    if isinstance(exc, TelegramRetryAfter):
        return Failure(FailureKind.RETRY, f"429 retry after {exc.retry_after}", exc.retry_after)
    if isinstance(exc, TelegramEntityTooLarge):
        # aiogram raises it as a network error, but no retry will make the file smaller.
        return Failure(FailureKind.TOO_LARGE, f"413 {exc.message}")
    if isinstance(exc, TelegramMigrateToChat):
        return Failure(FailureKind.RETRY, f"chat migrated to {exc.migrate_to_chat_id}", 0.0)
    if isinstance(exc, TelegramServerError | TelegramNetworkError | TimeoutError):
        return Failure(FailureKind.RETRY, f"{type(exc).__name__}: {exc}", backoff)
    if isinstance(exc, TelegramForbiddenError):
        if delivery.chat_id < 0:
            # A group that removed the bot: the queue waits until it is back (SPEC §8).
            return Failure(FailureKind.FORBIDDEN, f"Forbidden: {exc.message}", ACCESS_RETRY)
        return Failure(FailureKind.FORBIDDEN, f"TelegramForbiddenError: {exc.message}")
    if isinstance(exc, TelegramNotFound):
        return Failure(FailureKind.NOT_FOUND, f"TelegramNotFound: {exc.message}")
    if isinstance(exc, TelegramBadRequest):
        if delivery.chat_id < 0 and "chat not found" in exc.message:
            # What a group the bot was removed from answers to some calls.
            return Failure(FailureKind.FORBIDDEN, f"Bad Request: {exc.message}", ACCESS_RETRY)
        return Failure(FailureKind.REFUSED, f"TelegramBadRequest: {exc.message}")
    return Failure(FailureKind.RETRY, f"{type(exc).__name__}: {exc}", backoff)
