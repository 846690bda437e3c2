"""Telegram's text formatting: the HTML subset, a MarkdownV2 parser and entity post-processing.

The HTML parser follows tdlib's ``parse_html`` (td/telegram/MessageEntity.cpp) closely, including
its error messages and byte offsets, so a bot sees the same ``can't parse entities: ...`` errors
the real Bot API produces.  All entity offsets/lengths are in UTF-16 code units.
"""

from __future__ import annotations

import re
from typing import Any

Entity = dict[str, Any]

__all__ = [
    "Entity",
    "EntityParseError",
    "finalize_text",
    "find_auto_entities",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "parse_text",
    "utf16_len",
    "utf16_slice",
]


class EntityParseError(ValueError):
    """The text could not be parsed; ``str(exc)`` is tdlib's message (no Bot API prefix)."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf16_slice(text: str, offset: int, length: int) -> str:
    raw = text.encode("utf-16-le")
    return raw[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="replace")


_SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)

_SPACES = frozenset(b" \t\r\n\x00\x0b\x0c")

_TYPE_PRIORITY = {
    "mention": 50,
    "hashtag": 50,
    "cashtag": 50,
    "bot_command": 50,
    "url": 50,
    "email": 50,
    "phone_number": 50,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "code": 20,
    "pre": 11,
    "text_link": 49,
    "text_mention": 49,
    "custom_emoji": 99,
    "blockquote": 0,
    "expandable_blockquote": 0,
}


def _sort_entities(entities: list[Entity]) -> list[Entity]:
    return sorted(
        entities, key=lambda e: (e["offset"], -e["length"], _TYPE_PRIORITY.get(e["type"], 50))
    )


def _decode_html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """Returns (code point, new position) or (0, pos) if there's no entity at ``pos``."""

    def at(k: int) -> int:
        return data[k] if k < len(data) else 0

    if at(pos) != ord("&"):
        return 0, pos
    end = pos + 1
    res = 0
    if at(pos + 1) == ord("#"):
        end += 1
        if at(pos + 2) == ord("x"):
            end += 1
            while chr(at(end)) in "0123456789abcdefABCDEF" and at(end):
                res = res * 16 + int(chr(at(end)), 16)
                end += 1
                if res >= 0x10FFFF:
                    return 0, pos
        else:
            while ord("0") <= at(end) <= ord("9"):
                res = res * 10 + at(end) - ord("0")
                end += 1
                if res >= 0x10FFFF:
                    return 0, pos
        if res == 0 or res >= 0x10FFFF or 0xD800 <= res <= 0xDFFF:
            return 0, pos
    else:
        while chr(at(end)).isascii() and chr(at(end)).isalpha():
            end += 1
        name = data[pos + 1 : end]
        named = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
        if name not in named:
            return 0, pos
        res = ord(named[name])
    if at(end) == ord(";"):
        end += 1
    return res, end


def _check_link(url: str) -> str | None:
    """A rough equivalent of tdlib's LinkManager::check_link: normalises or rejects a URL."""
    url = url.strip()
    if not url or any(c in url for c in " \t\n<>\"'"):
        return None
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?(.*)$", url)
    if m and m.group(1).lower() in ("tg", "ton"):
        return url
    if m and m.group(2):
        scheme = m.group(1).lower()
        if scheme not in ("http", "https"):
            return None
        rest = m.group(3)
    elif m and not m.group(2) and not re.match(r"^[A-Za-z0-9.-]+:\d+", url):
        return None
    else:
        scheme = "http"
        rest = url
    host, sep, tail = rest.partition("/")
    host_only = host.split("@")[-1].split(":")[0]
    if not host_only or not re.match(r"^[A-Za-z0-9\u0080-\uffff._-]+$", host_only):
        return None
    if "." not in host_only and host_only.lower() != "localhost":
        return None
    return f"{scheme}://{host}/{tail}" if sep or not tail else f"{scheme}://{rest}"


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """Parses Telegram HTML. Returns (plain text, entities). Raises EntityParseError."""
    data = text.encode("utf-8")
    n = len(data)

    def at(k: int) -> int:
        return data[k] if k < n else 0

    result = bytearray()
    utf16 = 0
    entities: list[Entity] = []
    # (tag_name, argument, utf16 offset, byte position in result, expandable)
    stack: list[tuple[str, str, int, int, bool]] = []
    i = 0
    while i < n:
        c = data[i]
        if c == ord("&"):
            ch, new_i = _decode_html_entity(data, i)
            if ch:
                utf16 += 2 if ch > 0xFFFF else 1
                result += chr(ch).encode("utf-8")
                i = new_i
                continue
        if c != ord("<"):
            result.append(c)
            if (c & 0xC0) != 0x80:
                utf16 += 2 if c >= 0xF0 else 1
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != ord("/"):
            while at(i) not in _SPACES and at(i) != ord(">"):
                i += 1
            if at(i) == 0:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1 : i].decode("utf-8", errors="replace").lower()
            if tag not in _SUPPORTED_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            expandable = False
            while at(i) != ord(">"):
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) == ord(">"):
                    break
                attr_begin = i
                while at(i) not in _SPACES and at(i) not in (ord("="), ord(">")):
                    i += 1
                attr_name = data[attr_begin:i].decode("utf-8", errors="replace")
                if not attr_name:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) != ord("="):
                    if tag == "blockquote" and attr_name == "expandable":
                        expandable = True
                        continue
                    raise EntityParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {begin}'
                    )
                i += 1
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) == 0:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                value = bytearray()
                if at(i) not in (ord("'"), ord('"')):
                    token_begin = i
                    while chr(at(i)).isascii() and (chr(at(i)).isalnum() or at(i) in b".-"):
                        if at(i) == 0:
                            break
                        i += 1
                    value += data[token_begin:i].lower()
                    if at(i) not in _SPACES and at(i) != ord(">"):
                        raise EntityParseError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    end_char = at(i)
                    i += 1
                    while at(i) != end_char and at(i) != 0:
                        if at(i) == ord("&"):
                            ch, new_i = _decode_html_entity(data, i)
                            if ch:
                                value += chr(ch).encode("utf-8")
                                i = new_i
                                continue
                        value.append(at(i))
                        i += 1
                    if at(i) == end_char:
                        i += 1
                if at(i) == 0:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
                attr_value = value.decode("utf-8", errors="replace")
                if tag == "a" and attr_name == "href":
                    argument = attr_value
                elif tag in ("code", "pre") and attr_name == "class":
                    if attr_value.startswith("language-"):
                        argument = attr_value[len("language-") :]
                elif tag == "span" and attr_name == "class" and attr_value.startswith("tg-"):
                    argument = attr_value[3:]
                elif tag == "tg-emoji" and attr_name == "emoji-id":
                    argument = attr_value
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            stack.append((tag, argument, utf16, len(result), expandable))
            i += 1  # skip '>'
        else:
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
            while at(i) not in _SPACES and at(i) != ord(">"):
                i += 1
            end_tag = data[begin + 2 : i].decode("utf-8", errors="replace")
            while at(i) in _SPACES and at(i) != 0:
                i += 1
            if at(i) != ord(">"):
                raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
            tag, argument, offset, byte_pos, expandable = stack[-1]
            if end_tag and end_tag != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                    f'found "</{end_tag}>"'
                )
            i += 1  # skip '>'
            length = utf16 - offset
            if length > 0:
                simple = {
                    "i": "italic",
                    "em": "italic",
                    "b": "bold",
                    "strong": "bold",
                    "s": "strikethrough",
                    "strike": "strikethrough",
                    "del": "strikethrough",
                    "u": "underline",
                    "ins": "underline",
                    "tg-spoiler": "spoiler",
                    "span": "spoiler",
                }
                if tag in simple:
                    entities.append({"type": simple[tag], "offset": offset, "length": length})
                elif tag == "a":
                    url = argument or result[byte_pos:].decode("utf-8", errors="replace")
                    checked = _check_link(url)
                    if checked is not None:
                        entities.append(
                            {
                                "type": "text_link",
                                "offset": offset,
                                "length": length,
                                "url": checked,
                            }
                        )
                elif tag == "tg-emoji":
                    if argument.isdigit():
                        entities.append(
                            {
                                "type": "custom_emoji",
                                "offset": offset,
                                "length": length,
                                "custom_emoji_id": argument,
                            }
                        )
                elif tag == "blockquote":
                    kind = "expandable_blockquote" if expandable else "blockquote"
                    entities.append({"type": kind, "offset": offset, "length": length})
                elif tag == "pre":
                    last = entities[-1] if entities else None
                    if (
                        last is not None
                        and last["type"] == "code"
                        and last["offset"] == offset
                        and last["length"] == length
                    ):
                        # <pre><code class="language-x">...</code></pre>
                        entities.pop()
                        pre: Entity = {"type": "pre", "offset": offset, "length": length}
                        if last.get("language"):
                            pre["language"] = last["language"]
                        entities.append(pre)
                    else:
                        pre = {"type": "pre", "offset": offset, "length": length}
                        if argument:
                            pre["language"] = argument
                        entities.append(pre)
                elif tag == "code":
                    code: Entity = {"type": "code", "offset": offset, "length": length}
                    if argument:
                        code["language"] = argument
                    entities.append(code)
            stack.pop()
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    plain = result.decode("utf-8", errors="replace")
    for e in entities:
        if e["type"] == "code":
            e.pop("language", None)
    return plain, _sort_entities(entities)


# ---------------------------------------------------------------------------------------------
# MarkdownV2 (a faithful-enough subset of tdlib's parse_markdown_v2)
# ---------------------------------------------------------------------------------------------

_MD_RESERVED = "_*[]()~`>#+-=|{}.!"


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Parses MarkdownV2: *bold* _italic_ __underline__ ~strike~ ||spoiler|| `code` ```pre```,
    [text](url), ![emoji](tg://emoji?id=N), >blockquote lines; enforces escaping of reserved
    characters exactly like Telegram ("Character 'x' is reserved and must be escaped with the
    preceding '\\'")."""
    out: list[str] = []
    utf16 = 0
    entities: list[Entity] = []
    stack: list[tuple[str, int, int]] = []  # (marker, utf16 offset, char position in text)
    i = 0
    n = len(text)
    line_start = True
    quote_start: int | None = None

    def emit(s: str) -> None:
        nonlocal utf16
        out.append(s)
        utf16 += utf16_len(s)

    def close_quote() -> None:
        nonlocal quote_start
        if quote_start is not None and utf16 > quote_start:
            # trailing newline is not part of the quote
            length = utf16 - quote_start
            if out and "".join(out).endswith("\n"):
                length -= 1
            if length > 0:
                entities.append({"type": "blockquote", "offset": quote_start, "length": length})
        quote_start = None

    while i < n:
        c = text[i]
        if line_start:
            line_start = False
            if c == ">":
                if quote_start is None:
                    quote_start = utf16
                i += 1
                continue
            if quote_start is not None:
                close_quote()
        if c == "\\" and i + 1 < n and ord(text[i + 1]) <= 126 and ord(text[i + 1]) > 0:
            emit(text[i + 1])
            i += 2
            continue
        if c == "\n":
            emit(c)
            line_start = True
            i += 1
            continue
        if c not in _MD_RESERVED:
            emit(c)
            i += 1
            continue
        if stack and stack[-1][0] in ("`", "```"):
            pass
        if c == "`":
            if text.startswith("```", i):
                end = text.find("```", i + 3)
                if end < 0:
                    raise EntityParseError(
                        f"Can't find end of Pre entity at byte offset {len(text[:i].encode())}"
                    )
                body = text[i + 3 : end]
                language = ""
                nl = body.find("\n")
                if nl >= 0 and re.fullmatch(r"[^\s`]*", body[:nl]):
                    language, body = body[:nl], body[nl + 1 :]
                body = re.sub(r"\\([`\\])", r"\1", body)
                start = utf16
                emit(body)
                if utf16 > start:
                    e: Entity = {"type": "pre", "offset": start, "length": utf16 - start}
                    if language:
                        e["language"] = language
                    entities.append(e)
                i = end + 3
                continue
            end = i + 1
            while end < n and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise EntityParseError(
                    f"Can't find end of Code entity at byte offset {len(text[:i].encode())}"
                )
            body = re.sub(r"\\([`\\])", r"\1", text[i + 1 : end])
            start = utf16
            emit(body)
            if utf16 > start:
                entities.append({"type": "code", "offset": start, "length": utf16 - start})
            i = end + 1
            continue
        marker = c
        if c == "_" and text.startswith("__", i):
            marker = "__"
        elif c == "|" and text.startswith("||", i):
            marker = "||"
        elif c == "!" and text.startswith("![", i):
            marker = "!["
        if marker in ("*", "_", "__", "~", "||"):
            if stack and stack[-1][0] == marker:
                _, start, _pos = stack.pop()
                kind = {
                    "*": "bold",
                    "_": "italic",
                    "__": "underline",
                    "~": "strikethrough",
                    "||": "spoiler",
                }[marker]
                if utf16 > start:
                    entities.append({"type": kind, "offset": start, "length": utf16 - start})
            else:
                stack.append((marker, utf16, i))
            i += len(marker)
            continue
        if marker in ("[", "!["):
            stack.append((marker, utf16, i))
            i += len(marker)
            continue
        if c == "]" and stack and stack[-1][0] in ("[", "!["):
            opener, start, _pos = stack.pop()
            if not text.startswith("(", i + 1):
                if opener == "![":
                    raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
                # [text] without url: tdlib treats it as a text_link to the text itself
                i += 1
                url = "".join(out)[-(utf16 - start) :] if utf16 > start else ""
            else:
                end = i + 2
                url_chars: list[str] = []
                while end < n and text[end] != ")":
                    if text[end] == "\\" and end + 1 < n:
                        url_chars.append(text[end + 1])
                        end += 2
                        continue
                    url_chars.append(text[end])
                    end += 1
                if end >= n:
                    raise EntityParseError(
                        f"Can't find end of a URL at byte offset {len(text[: i + 1].encode())}"
                    )
                url = "".join(url_chars)
                i = end + 1
            if utf16 > start:
                if opener == "![":
                    m = re.match(r"^tg://emoji\?id=(\d+)$", url)
                    if not m:
                        raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
                    entities.append(
                        {
                            "type": "custom_emoji",
                            "offset": start,
                            "length": utf16 - start,
                            "custom_emoji_id": m.group(1),
                        }
                    )
                else:
                    checked = _check_link(url)
                    if checked is not None:
                        entities.append(
                            {
                                "type": "text_link",
                                "offset": start,
                                "length": utf16 - start,
                                "url": checked,
                            }
                        )
            continue
        raise EntityParseError(
            f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
        )
    if stack:
        marker, _start, pos = stack[-1]
        names = {
            "*": "Bold",
            "_": "Italic",
            "__": "Underline",
            "~": "Strikethrough",
            "||": "Spoiler",
            "[": "TextUrl",
            "![": "CustomEmoji",
        }
        raise EntityParseError(
            f"Can't find end of {names[marker]} entity at byte offset {len(text[:pos].encode())}"
        )
    close_quote()
    return "".join(out), _sort_entities(entities)


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url); '\\' escapes the markers.
    No other characters are reserved. Unclosed markers give Telegram's "Can't find end of the
    entity starting at byte offset N"."""
    out: list[str] = []
    utf16 = 0
    entities: list[Entity] = []
    i = 0
    n = len(text)

    def emit(s: str) -> None:
        nonlocal utf16
        out.append(s)
        utf16 += utf16_len(s)

    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            emit(text[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            emit(c)
            i += 1
            continue
        byte_offset = len(text[:i].encode("utf-8"))
        if c == "[":
            close = text.find("](", i + 1)
            end = text.find(")", close + 2) if close >= 0 else -1
            if close < 0 or end < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {byte_offset}"
                )
            start = utf16
            emit(text[i + 1 : close])
            url = _check_link(text[close + 2 : end])
            if url is not None and utf16 > start:
                entities.append(
                    {"type": "text_link", "offset": start, "length": utf16 - start, "url": url}
                )
            i = end + 1
            continue
        marker = "```" if text.startswith("```", i) else c
        end = text.find(marker, i + len(marker))
        if end < 0:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {byte_offset}"
            )
        body = text[i + len(marker) : end]
        language = ""
        if marker == "```":
            nl = body.find("\n")
            if nl >= 0 and re.fullmatch(r"[^\s`]*", body[:nl]):
                language, body = body[:nl], body[nl + 1 :]
        start = utf16
        emit(body)
        if utf16 > start:
            kind = {"*": "bold", "_": "italic", "`": "code", "```": "pre"}[marker]
            e: Entity = {"type": kind, "offset": start, "length": utf16 - start}
            if language:
                e["language"] = language
            entities.append(e)
        i = end + len(marker)
    return "".join(out), _sort_entities(entities)


# ---------------------------------------------------------------------------------------------
# Entity post-processing shared by all modes
# ---------------------------------------------------------------------------------------------

_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("url", re.compile(r"(?<![\w@/.])https?://[^\s<>\"']+", re.IGNORECASE)),
    (
        "email",
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
        ),
    ),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{4,31}\b")),
    (
        "bot_command",
        re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])"),
    ),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
]

_NO_AUTO_INSIDE = frozenset({"code", "pre", "text_link", "text_mention", "custom_emoji"})


def find_auto_entities(text: str, existing: list[Entity]) -> list[Entity]:
    """Entities Telegram detects by itself (url with explicit scheme, email, mention,
    bot_command, hashtag). Ones overlapping code/pre/links are skipped, like tdlib does."""
    found: list[Entity] = []
    blocked = [
        (e["offset"], e["offset"] + e["length"]) for e in existing if e["type"] in _NO_AUTO_INSIDE
    ]
    taken: list[tuple[int, int]] = []
    for kind, pattern in _AUTO_PATTERNS:
        for m in pattern.finditer(text):
            s = m.group(0)
            if kind == "url":
                s = s.rstrip(".,;:!?'\")]}")
                if s.count("(") < s.count(")"):
                    s = s.rstrip(")")
            if kind == "email" and text[m.start() - 1 : m.start()] == "/":
                continue
            start = utf16_len(text[: m.start()])
            length = utf16_len(s)
            end = start + length
            if any(a < end and start < b for a, b in blocked + taken):
                continue
            taken.append((start, end))
            found.append({"type": kind, "offset": start, "length": length})
    return found


_TRIM = " \t\r\n\x0b\x0c"


def finalize_text(
    text: str, entities: list[Entity], *, detect: bool = True
) -> tuple[str, list[Entity]]:
    """Trims surrounding whitespace (moving entities), clips/drops entities out of range and adds
    auto-detected entities — what tdlib's fix_formatted_text does before a message is stored."""
    stripped_left = text.lstrip(_TRIM)
    shift = utf16_len(text) - utf16_len(stripped_left)
    plain = stripped_left.rstrip(_TRIM)
    total = utf16_len(plain)
    fixed: list[Entity] = []
    for e in entities:
        start = max(int(e["offset"]) - shift, 0)
        end = min(int(e["offset"]) + int(e["length"]) - shift, total)
        if end <= start:
            continue
        ne = dict(e)
        ne["offset"] = start
        ne["length"] = end - start
        fixed.append(ne)
    if detect:
        fixed += find_auto_entities(plain, fixed)
    return plain, _sort_entities(fixed)


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Parses ``text`` according to ``parse_mode`` (None/""/HTML/MarkdownV2/Markdown)."""
    mode = (parse_mode or "").strip()
    low = mode.lower()
    if not low:
        return text, []
    if low == "html":
        return parse_html(text)
    if low == "markdownv2":
        return parse_markdown_v2(text)
    if low == "markdown":
        return parse_markdown(text)
    raise EntityParseError(f"Unsupported parse_mode: {mode}")
