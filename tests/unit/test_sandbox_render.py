"""How the sandbox page draws Telegram text: entities become safe, well-formed HTML."""

from __future__ import annotations

from datetime import UTC, datetime, time
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from bot.emulator import parse_html
from bot.sandbox.render import entities_to_html, message_view
from bot.sandbox.web import next_local

MOSCOW = ZoneInfo("Europe/Moscow")


class _Reader(HTMLParser):
    """Collects the text and checks that every tag closes in order."""

    VOID = frozenset({"br", "img"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read(html: str) -> str:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    assert not reader.open, f"unclosed: {reader.open}"
    return "".join(reader.text)


def test_formatting_of_a_bot_message_survives_the_round_trip() -> None:
    text, entities = parse_html(
        "<b>Request #7</b> · <i>P1</i>\n<blockquote>It <u>fails</u> &lt;always&gt;</blockquote>"
        '<code>12345678</code> <a href="https://e-comet.example/t/7">open</a>'
    )
    html = entities_to_html(text, entities)
    assert "<strong>Request #7</strong>" in html
    assert "<em>P1</em>" in html
    assert "<blockquote>It <u>fails</u> &lt;always&gt;</blockquote>" in html
    assert "<code>12345678</code>" in html
    assert '<a href="https://e-comet.example/t/7" target="_blank"' in html
    assert read(html) == text


def test_user_text_is_escaped_and_unsafe_links_are_not_links() -> None:
    text = "<script>alert(1)</script> click"
    entities = [{"type": "text_link", "offset": 30, "length": 5, "url": "javascript:alert(1)"}]
    html = entities_to_html(text, entities)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert read(html) == text


def test_offsets_count_utf16_units_like_telegram() -> None:
    text = "👍 ok 🙂 fine"
    # "ok" starts after an emoji of two UTF-16 units and a space.
    html = entities_to_html(text, [{"type": "bold", "offset": 3, "length": 2}])
    assert html == "👍 <strong>ok</strong> 🙂 fine"


def test_overlapping_entities_are_closed_and_reopened() -> None:
    text = "abcdef"
    html = entities_to_html(
        text,
        [{"type": "bold", "offset": 0, "length": 4}, {"type": "italic", "offset": 2, "length": 4}],
    )
    assert html == "<strong>ab<em>cd</em></strong><em>ef</em>"


ENTITY_TYPES = [
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "code",
    "pre",
    "blockquote",
    "text_link",
    "url",
    "mention",
    "bot_command",
]


@st.composite
def formatted(draw: st.DrawFn) -> tuple[str, list[dict[str, object]]]:
    text = draw(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40))
    size = len(text.encode("utf-16-le")) // 2
    entities = []
    for _ in range(draw(st.integers(0, 5))):
        begin = draw(st.integers(0, max(size - 1, 0)))
        length = draw(st.integers(0, size - begin))
        kind = draw(st.sampled_from(ENTITY_TYPES))
        entity: dict[str, object] = {"type": kind, "offset": begin, "length": length}
        if kind == "text_link":
            entity["url"] = draw(st.sampled_from(["https://x.example", "javascript:x()"]))
        entities.append(entity)
    return text, entities


@given(formatted())
def test_any_entities_give_well_formed_html_with_the_same_text(
    case: tuple[str, list[dict[str, object]]],
) -> None:
    text, entities = case
    html = entities_to_html(text, entities)
    assert read(html) == text  # even where an entity would cut a character in two
    assert 'href="javascript' not in html


def test_a_message_view_has_what_the_page_draws() -> None:
    message = {
        "message_id": 9,
        "from": {"id": 7, "is_bot": True, "first_name": "Ecomet Support"},
        "date": int(datetime(2026, 11, 26, 6, 30, tzinfo=UTC).timestamp()),
        "text": "Is it solved?",
        "edit_date": 1,
        "reply_to_message": {
            "message_id": 3,
            "from": {"id": 1001, "first_name": "Alice"},
            "photo": [{"file_id": "p"}],
            "caption": "screen",
        },
        "reply_markup": {
            "inline_keyboard": [
                [
                    {"text": "👍 Solved", "callback_data": "r:1"},
                    {"text": "Site", "url": "https://x.example"},
                ]
            ]
        },
    }
    view = message_view(message, viewer=1001, tz=MOSCOW, file_url=lambda f: f"/f/{f}")
    assert view["time"] == "26.11 09:30"
    assert view["by_bot"] and not view["mine"] and view["edited"]
    assert view["reply"] == {"id": 3, "from": "Alice", "text": "🖼 screen"}
    assert view["keyboard"] == [
        [
            {"text": "👍 Solved", "data": "r:1"},
            {"text": "Site", "data": None, "url": "https://x.example"},
        ]
    ]


def test_to_a_time_of_day_is_the_next_such_moment_in_the_service_zone() -> None:
    morning = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # 08:00 in Moscow
    assert next_local(morning, time(9), MOSCOW) == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    evening = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # exactly 09:00: the next one
    assert next_local(evening, time(9), MOSCOW) == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
