"""Composing the desk's mail (SPEC §10): headers, threading, bodies, and the round trip."""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.mail.compose import (
    MAX_OUTGOING_REFERENCES,
    OutgoingMail,
    build_message,
    message_id_for,
    text_to_html,
    thread_references,
    thread_subject,
)
from bot.mail.parse import (
    MailAttachment,
    clean_body,
    html_to_text,
    parse_mail,
    ticket_number_in,
    topic_of,
)

SENDER = "e-Comet Support <support@e-comet.io>"
WHEN = datetime(2024, 3, 14, 9, 30, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def outgoing(**changes: object) -> OutgoingMail:
    fields: dict[str, object] = {
        "to": "ivan@example.com",
        "to_name": "Иван Петров",
        "subject": "Re: [#123] Не работает выгрузка",
        "text": "Здравствуйте!\n\nМы исправили выгрузку, проверьте: https://e-comet.io/reports.",
        "html": None,
        "message_id": "<m1@e-comet.io>",
        "in_reply_to": "<CAF3xYz@mail.gmail.com>",
        "references": ("<root@e-comet.io>",),
    }
    fields.update(changes)
    return OutgoingMail(**fields)  # type: ignore[arg-type]


def wire(mail: OutgoingMail, sender: str = SENDER) -> bytes:
    """What the SMTP transport puts on the wire."""
    return build_message(mail, sender, date=WHEN).as_bytes(policy=email.policy.SMTP)


def test_headers_of_a_threaded_reply() -> None:
    msg = build_message(outgoing(), SENDER, date=WHEN)
    assert msg["From"] == SENDER
    assert build_message(outgoing(), "support@e-comet.io, x@y.z")["From"] == "support@e-comet.io"
    assert msg["To"].addresses[0].display_name == "Иван Петров"
    assert msg["To"].addresses[0].addr_spec == "ivan@example.com"
    assert msg["Subject"] == "Re: [#123] Не работает выгрузка"
    assert msg["Date"] == "Thu, 14 Mar 2024 09:30:00 +0000"
    assert msg["Message-ID"] == "<m1@e-comet.io>"
    assert msg["In-Reply-To"] == "<CAF3xYz@mail.gmail.com>"
    assert msg["References"] == "<root@e-comet.io> <CAF3xYz@mail.gmail.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Content-Language"] is None
    raw = wire(outgoing())
    assert b"To: =?utf-8?" in raw  # the Cyrillic name is RFC 2047-encoded
    assert raw.isascii()


def test_a_staff_answer_is_not_auto_submitted_and_carries_its_language() -> None:
    msg = build_message(outgoing(auto_submitted=False, locale="ru"), SENDER)
    assert msg["Auto-Submitted"] is None
    assert msg["Content-Language"] == "ru"
    assert parse_mail(msg.as_bytes()).locale == "ru"
    assert parse_mail(msg.as_bytes()).automated is None


def test_without_attachments_it_is_plain_and_html_alternatives() -> None:
    msg = build_message(outgoing(), SENDER)
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert "Мы исправили выгрузку" in plain.get_content()
    assert '<a href="https://e-comet.io/reports">https://e-comet.io/reports</a>.' in (
        html.get_content()
    )


def test_attachments_make_it_mixed_and_keep_names_and_bytes() -> None:
    files = (
        MailAttachment("скриншот.png", "image/png", PNG),
        MailAttachment("отчёт за март.pdf", "application/pdf", b"%PDF-1.4 data"),
        MailAttachment("log.txt", "text/plain", "строка\n".encode("cp1251")),
        MailAttachment("weird", "not a type", b"x"),
    )
    msg = build_message(outgoing(attachments=files), SENDER)
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in msg.iter_parts()] == [
        "multipart/alternative",
        "image/png",
        "application/pdf",
        "text/plain",
        "application/octet-stream",
    ]
    got = parse_mail(wire(outgoing(attachments=files)))
    assert [(a.filename, a.data) for a in got.attachments] == [(f.filename, f.data) for f in files]
    assert got.attachments[0].is_image


def test_given_html_is_used_as_is() -> None:
    msg = build_message(outgoing(html="<p>Готово</p>"), SENDER)
    assert msg.get_body(("html",)).get_content() == "<p>Готово</p>\n"  # type: ignore[union-attr]


def test_header_injection_is_not_possible() -> None:
    mail = outgoing(subject="Hi\r\nBcc: victim@example.com", to_name="Eve\nBcc: x@y.z")
    raw = wire(mail)
    assert not re.search(rb"^Bcc:", raw, re.MULTILINE)
    assert parse_mail(raw).subject == "Hi Bcc: victim@example.com"


@pytest.mark.parametrize("to", ["not an address", "a@b.c, d@e.f", ""])
def test_a_bad_recipient_is_refused(to: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the email package says only ValueError
        build_message(outgoing(to=to), SENDER)


def test_a_sender_without_an_address_is_refused() -> None:
    with pytest.raises(ValueError, match="MAIL_FROM"):
        build_message(outgoing(), "e-Comet Support")


def test_long_message_ids_are_never_encoded() -> None:
    # Outlook's ids are about 80 characters; the email package would RFC 2047-encode them.
    long_ids = tuple(f"<{'A' * 70}{n}@DB9PR01MB1234.eurprd01.prod.outlook.com>" for n in range(3))
    raw = wire(outgoing(in_reply_to=long_ids[-1], references=long_ids[:-1]))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for name in ("Message-ID", "In-Reply-To", "References"):
        found = re.search(rf"^{name}:.*?(?=\r\n\S)", head, re.MULTILINE | re.DOTALL)
        assert found is not None
        assert "=?" not in found.group(0)
        assert all(len(line) <= 998 for line in found.group(0).split("\r\n"))
    got = parse_mail(raw)
    assert got.in_reply_to == (long_ids[-1],)
    assert got.references == long_ids


def test_references_end_with_the_parent_and_are_trimmed() -> None:
    chain = tuple(f"<r{n}@x>" for n in range(50))
    refs = thread_references(chain, "<parent@x>")
    assert len(refs) == MAX_OUTGOING_REFERENCES
    assert refs[0] == "<r0@x>"
    assert refs[-1] == "<parent@x>"
    assert thread_references(("<a@x>", "junk", "<b@x>", "<a@x>"), "<b@x>") == ("<a@x>", "<b@x>")
    assert thread_references((), None) == ()
    assert build_message(outgoing(in_reply_to=None, references=()), SENDER)["References"] is None


def test_message_id_for_is_stable_per_seed_and_sender() -> None:
    first = message_id_for("delivery-42", SENDER)
    assert first == message_id_for("delivery-42", "Other Name <Support@E-Comet.io>")
    assert re.fullmatch(r"<[0-9a-f]{32}@e-comet\.io>", first)
    assert message_id_for("delivery-43", SENDER) != first
    assert message_id_for("delivery-42", "staging@e-comet.io") != first
    assert message_id_for("x", "Поддержка <help@пример.рф>").endswith("@xn--e1afmkfd.xn--p1ai>")
    with pytest.raises(ValueError, match="MAIL_FROM"):
        message_id_for("x", "")


def test_thread_subject() -> None:
    assert thread_subject(123, "Не работает выгрузка") == "[#123] Не работает выгрузка"
    assert thread_subject(123, "Не работает", reply=True) == "Re: [#123] Не работает"
    assert thread_subject(7, "") == "[#7]"
    assert thread_subject(7, "[#5] old tag\nand a line") == "[#7] old tag and a line"


@given(st.integers(min_value=1, max_value=10**12), st.text(max_size=120), st.booleans())
def test_the_ticket_number_survives_any_topic(number: int, topic: str, reply: bool) -> None:
    subject = thread_subject(number, topic, reply=reply)
    assert ticket_number_in(subject) == number
    assert topic_of(subject) == topic_of(topic)


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"),
        ("a & b\nc", "<p>a &amp; b<br>\nc</p>"),
        ("one\n\n\ntwo", "<p>one</p>\n<p>two</p>"),
        (
            "see https://x.io/a?b=1&c=2.",
            '<p>see <a href="https://x.io/a?b=1&amp;c=2">https://x.io/a?b=1&amp;c=2</a>.</p>',
        ),
        (
            "(https://en.wikipedia.org/wiki/Foo_(bar))",
            '<p>(<a href="https://en.wikipedia.org/wiki/Foo_(bar)">https://en.wikipedia.org/wiki/Foo_(bar)</a>)</p>',
        ),
        (
            'https://x.io/"onmouseover="alert(1)',
            '<p><a href="https://x.io/">https://x.io/</a>&quot;onmouseover=&quot;alert(1)</p>',
        ),
        ("javascript:alert(1)", "<p>javascript:alert(1)</p>"),
        ("mailto:a@b.c", '<p><a href="mailto:a@b.c">a@b.c</a></p>'),
        ("  indented", "<p> &nbsp;indented</p>"),
        ("", ""),
    ],
)
def test_text_to_html(text: str, html: str) -> None:
    assert text_to_html(text) == html


@given(
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf")) | st.just("\n"), max_size=200)
)
def test_text_to_html_lets_no_markup_through(text: str) -> None:
    html = text_to_html(text)
    tags = set(re.findall(r"</?([a-zA-Z]+)", html))
    assert tags <= {"p", "br", "a"}
    # And reading it back gives the words (HTML collapses runs of spaces, so compare words).
    assert html_to_text(html).split() == text.split() or "http" in text or "mailto" in text


# --- the round trip: build → bytes → parse ------------------------------------------------------

LINE_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp"), blacklist_characters="\u034f\xa0"
)
LINES = st.lists(st.text(LINE_CHARS, min_size=1, max_size=40).map(str.strip), max_size=6).map(
    lambda lines: [line for line in lines if line]
)
PLAIN_WORDS = st.lists(
    st.text(st.characters(whitelist_categories=("L", "Nd")), min_size=1, max_size=12),
    min_size=1,
    max_size=12,
).map(" ".join)
NAMES = st.text(LINE_CHARS, max_size=30).map(lambda s: " ".join(s.split()))
ATTACHMENTS = st.lists(
    st.builds(
        MailAttachment,
        filename=st.text(
            st.characters(whitelist_categories=("L", "Nd")), min_size=1, max_size=20
        ).map(lambda s: s + ".dat"),
        content_type=st.sampled_from(["application/pdf", "application/zip", "audio/ogg"]),
        data=st.binary(min_size=1, max_size=300),
    ),
    max_size=3,
).map(tuple)
IDS = st.from_regex(r"<[A-Za-z0-9._%+=$-]{1,60}@[a-z0-9.-]{1,30}>", fullmatch=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.text(LINE_CHARS, max_size=150),
    lines=LINES,
    sender_name=NAMES,
    attachments=ATTACHMENTS,
    seed=st.text(max_size=20),
    in_reply_to=st.one_of(st.none(), IDS),
    references=st.lists(IDS, max_size=30).map(tuple),
)
def test_round_trip(
    subject: str,
    lines: list[str],
    sender_name: str,
    attachments: tuple[MailAttachment, ...],
    seed: str,
    in_reply_to: str | None,
    references: tuple[str, ...],
) -> None:
    # MAIL_FROM as a person would write it, quoted where the name needs it.
    sender = str(Address(display_name=sender_name, addr_spec="support@e-comet.io"))
    text = "\n".join(lines)
    mail = OutgoingMail(
        to="client@example.com",
        to_name=None,
        subject=subject,
        text=text,
        html=None,
        message_id=message_id_for(seed, "support@e-comet.io"),
        in_reply_to=in_reply_to,
        references=references,
        attachments=attachments,
    )
    got = parse_mail(wire(mail, sender))
    assert got.subject == " ".join(subject.split())
    assert got.sender == "support@e-comet.io"
    assert got.sender_name == (sender_name or "support")
    assert got.full_text == text
    assert got.text == clean_body(text)
    assert got.attachments == attachments
    assert got.message_id == mail.message_id
    assert got.in_reply_to == ((in_reply_to,) if in_reply_to else ())
    assert got.references == thread_references(references, in_reply_to)


@settings(max_examples=100, deadline=None)
@given(st.lists(PLAIN_WORDS, min_size=1, max_size=5))
def test_round_trip_of_plain_words_keeps_the_text_whole(paragraphs: list[str]) -> None:
    text = "\n\n".join(paragraphs)
    got = parse_mail(wire(outgoing(text=text)))
    assert got.text == text
    # The HTML part alone says the same.
    msg = build_message(outgoing(text=text), SENDER)
    html = msg.get_body(("html",))
    assert isinstance(html, EmailMessage)
    assert html_to_text(html.get_content()) == text
