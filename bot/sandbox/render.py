"""Telegram messages as the sandbox page shows them: text with entities turned into safe HTML,
media turned into links to the emulator's files, keyboards into plain button lists."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

JsonDict = dict[str, Any]

# Telegram entity type → (opening tag, closing tag); links are built separately.
_TAGS: dict[str, tuple[str, str]] = {
    "bold": ("<strong>", "</strong>"),
    "italic": ("<em>", "</em>"),
    "underline": ("<u>", "</u>"),
    "strikethrough": ("<s>", "</s>"),
    "spoiler": ('<span class="spoiler" tabindex="0">', "</span>"),
    "code": ("<code>", "</code>"),
    "pre": ("<pre><code>", "</code></pre>"),
    "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ('<blockquote class="expandable">', "</blockquote>"),
    "mention": ('<span class="mention">', "</span>"),
    "text_mention": ('<span class="mention">', "</span>"),
    "hashtag": ('<span class="hashtag">', "</span>"),
    "cashtag": ('<span class="hashtag">', "</span>"),
    "bot_command": ('<span class="command">', "</span>"),
}
_SAFE_SCHEMES = ("http://", "https://", "mailto:", "tg://")
# Images a browser shows without running anything (not SVG: it can carry script).
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def image_type(content: bytes) -> str | None:
    """The type of a raster image the browser may show inline, by its first bytes (what the
    uploader declared does not count: an HTML or SVG file can claim to be image/png)."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


def _link(href: str) -> tuple[str, str]:
    if not href.lower().startswith(_SAFE_SCHEMES):
        # A javascript: or data: link must never become clickable on the page.
        return '<span class="link">', "</span>"
    return f'<a href="{escape(href)}" target="_blank" rel="noopener noreferrer">', "</a>"


def _tags(entity: JsonDict, text: str) -> tuple[str, str]:
    kind = entity.get("type", "")
    if kind == "text_link":
        return _link(str(entity.get("url", "")))
    if kind == "url":
        return _link(text if "://" in text else "http://" + text)
    if kind == "email":
        return _link("mailto:" + text)
    return _TAGS.get(kind, ("", ""))


def entities_to_html(text: str, entities: list[JsonDict] | None) -> str:
    """HTML for ``text`` with its Telegram ``entities`` (offsets in UTF-16 code units).

    Every piece of text is escaped; nested entities nest, and overlapping ones are closed and
    reopened around the overlap so the result is always well-formed."""
    units = text.encode("utf-16-le")

    def piece(begin: int, end: int) -> str:
        return units[2 * begin : 2 * end].decode("utf-16-le", errors="replace")

    total = len(units) // 2

    def inside_pair(at: int) -> bool:
        # A low surrogate is the second half of a character: a cut there would split it.
        return (
            0 < at < total
            and 0xDC00 <= int.from_bytes(units[2 * at : 2 * at + 2], "little") <= 0xDFFF
        )

    spans = []
    for entity in entities or []:
        begin = max(0, int(entity.get("offset", 0)))
        end = min(total, begin + max(0, int(entity.get("length", 0))))
        begin -= inside_pair(begin)
        end += inside_pair(end)
        if end > begin:
            opening, closing = _tags(entity, piece(begin, end))
            if opening:
                spans.append((begin, end, opening, closing))
    # Outer entities first: earlier start, then longer.
    spans.sort(key=lambda span: (span[0], -span[1]))
    cuts = sorted({0, total} | {s[0] for s in spans} | {s[1] for s in spans})
    out: list[str] = []
    stack: list[tuple[int, int, str, str]] = []
    pending = iter(spans)
    upcoming = next(pending, None)
    for here, following in itertools.pairwise(cuts):
        # Close what ends here; anything above it on the stack is closed and reopened.
        if any(span[1] <= here for span in stack):
            reopen = []
            while stack:
                span = stack.pop()
                out.append(span[3])
                if span[1] > here:
                    reopen.append(span)
                elif not any(s[1] <= here for s in stack):
                    break
            for span in reversed(reopen):
                out.append(span[2])
                stack.append(span)
        while upcoming is not None and upcoming[0] == here:
            out.append(upcoming[2])
            stack.append(upcoming)
            upcoming = next(pending, None)
        out.append(escape(piece(here, following)))
    while stack:
        out.append(stack.pop()[3])
    return "".join(out)


def _name(user: JsonDict | None) -> str:
    if not user:
        return ""
    return " ".join(filter(None, (user.get("first_name"), user.get("last_name"))))


def snippet(message: JsonDict) -> str:
    """One line for a chat list or a quoted reply: the text, or what kind of media it is."""
    text = message.get("text") or message.get("caption") or ""
    text = " ".join(text.split())
    if len(text) > 80:
        text = text[:79] + "…"
    for key, label in (
        ("photo", "🖼"),
        ("document", "📄"),
        ("sticker", "🙂"),
        ("voice", "🎤"),
        ("forum_topic_created", "#"),
    ):
        if key in message:
            return f"{label} {text}".strip()
    # A topic renamed, closed or reopened shows as its bubble does, not as "…".
    return text or _service(message) or "…"


def _service(message: JsonDict) -> str | None:
    if "forum_topic_created" in message:
        return "# " + str(message["forum_topic_created"].get("name", ""))
    if "forum_topic_edited" in message:
        name = message["forum_topic_edited"].get("name")
        return "✎ " + str(name) if name else "✎"
    if "forum_topic_closed" in message:
        return "🔒"
    if "forum_topic_reopened" in message:
        return "🔓"
    if "pinned_message" in message:
        return "📌 " + snippet(message["pinned_message"])
    return None


def message_view(
    message: JsonDict,
    *,
    viewer: int,
    tz: ZoneInfo,
    file_url: Callable[[str], str],
    shown_inline: Callable[[str], bool] | None = None,
    reactions: list[str] | None = None,
) -> JsonDict:
    """What the page needs to draw one message bubble. ``shown_inline`` tells whether a file
    is served as a picture (by its bytes); without it the declared type decides."""
    sender = message.get("from") or {}
    text = message.get("text")
    entities = message.get("entities")
    if text is None:
        text = message.get("caption") or ""
        entities = message.get("caption_entities")
    view: JsonDict = {
        "id": message["message_id"],
        "from": _name(sender),
        "from_id": sender.get("id"),
        "by_bot": bool(sender.get("is_bot")),
        "mine": sender.get("id") == viewer,
        "time": datetime.fromtimestamp(int(message.get("date", 0)), tz).strftime("%d.%m %H:%M"),
        "edited": "edit_date" in message,
        "html": entities_to_html(text, entities),
        "editable": "text" in message and sender.get("id") == viewer,
        "service": _service(message),
    }
    if "text" in message:
        view["text"] = message["text"]
    if reactions:
        view["reactions"] = reactions
    if "photo" in message:
        view["photo"] = file_url(message["photo"][-1]["file_id"])
    if "document" in message:
        document = message["document"]
        view["document"] = {
            "name": document.get("file_name") or "file",
            "url": file_url(document["file_id"]),
            "image": (
                shown_inline(document["file_id"])
                if shown_inline is not None
                else document.get("mime_type") in INLINE_IMAGE_TYPES
            ),
        }
    if "sticker" in message:
        view["sticker"] = message["sticker"].get("emoji") or "🙂"
    if "voice" in message:
        view["voice"] = int(message["voice"].get("duration", 0))
    reply = message.get("reply_to_message")
    if reply and "forum_topic_created" not in reply:
        view["reply"] = {
            "id": reply["message_id"],
            "from": _name(reply.get("from")),
            "text": snippet(reply),
        }
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    if rows:
        view["keyboard"] = [
            [
                {"text": button.get("text", ""), "data": button.get("callback_data")}
                | ({"url": button["url"]} if "url" in button else {})
                for button in row
            ]
            for row in rows
        ]
    return view
