"""Reading incoming e-mail (SPEC §10): real-world shapes of mail, noise, damage, properties."""

from __future__ import annotations

import base64
import quopri
import re
import string
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.mail.parse import (
    IncomingMail,
    MailAttachment,
    MailParseError,
    account_number_in,
    address_in,
    clean_body,
    decode_bytes,
    html_to_text,
    parse_mail,
    ticket_number_in,
    topic_of,
    unflow,
)

ACCOUNT = r"^[0-9]{4,20}$"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def mail(template: str, **parts: str) -> bytes:
    """A raw message as an IMAP server hands it over: CRLF line ends, bytes.

    ``$name`` placeholders take ``parts`` after the template is dedented (encoded bodies are
    not indented).
    """
    text = string.Template(textwrap.dedent(template).lstrip("\n")).safe_substitute(parts)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def b64(data: str | bytes, charset: str = "utf-8") -> str:
    raw = data.encode(charset) if isinstance(data, str) else data
    return base64.encodebytes(raw).decode("ascii").rstrip("\n")


def qp(text: str, charset: str = "utf-8") -> str:
    return quopri.encodestring(text.encode(charset)).decode("ascii")


def encoded_word(text: str, charset: str = "utf-8") -> str:
    """A header value the way mailers write non-ASCII: RFC 2047 encoded words (kept on one
    line here so the fixtures can be indented)."""
    return Header(text, charset).encode().replace("\n", "")


# --- realistic mails -------------------------------------------------------------------------

GMAIL_PLAIN = """\
Да, вот номер счёта: 12345678.
Выгрузка всё ещё падает с ошибкой 500.

чт, 14 мар. 2024 г. в 12:34, e-Comet Support <support@e-comet.io>:

> Здравствуйте! Уточните, пожалуйста, номер счёта.
>
> --
> e-Comet Support
>
"""
GMAIL_HTML = (
    '<div dir="ltr">Да, вот номер счёта: 12345678.<div>Выгрузка всё ещё падает с ошибкой'
    ' 500.</div></div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">чт, 14 мар.'
    ' 2024 г. в 12:34, e-Comet Support &lt;<a href="mailto:support@e-comet.io">'
    'support@e-comet.io</a>&gt;:<br></div><blockquote class="gmail_quote" style="margin:0px'
    ' 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">Здравствуйте!'
    " Уточните, пожалуйста, номер счёта.<br>--<br>e-Comet Support</blockquote></div>\n"
)
GMAIL_REPLY = mail(
    """
    Delivered-To: support@e-comet.io
    Received: by 2002:a05:6402:1a2b:b0:55f:1234:5678 with SMTP id x11csp123456;
            Thu, 14 Mar 2024 02:40:06 -0700 (PDT)
    MIME-Version: 1.0
    References: <a1b2c3.ticket-123@e-comet.io> <d4e5f6.ticket-123@e-comet.io>
    In-Reply-To: <d4e5f6.ticket-123@e-comet.io>
    From: $name <Ivan.Petrov@Gmail.com>
    Date: Thu, 14 Mar 2024 12:40:05 +0300
    Message-ID: <CAF3xYz+9kQ2mA1b_Zt=p0Lw@mail.gmail.com>
    Subject: $subject
    To: e-Comet Support <support@e-comet.io>
    Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f6"

    --000000000000a1b2c3d4e5f6
    Content-Type: text/plain; charset="UTF-8"
    Content-Transfer-Encoding: quoted-printable

    $plain
    --000000000000a1b2c3d4e5f6
    Content-Type: text/html; charset="UTF-8"
    Content-Transfer-Encoding: quoted-printable

    $html
    --000000000000a1b2c3d4e5f6--
""",
    name=encoded_word("Иван Петров"),
    subject=encoded_word("Re: [#123] Не работает выгрузка отчётов по складам"),
    plain=qp(GMAIL_PLAIN),
    html=qp(GMAIL_HTML),
)


def test_gmail_reply_in_russian() -> None:
    got = parse_mail(GMAIL_REPLY)
    assert got.message_id == "<CAF3xYz+9kQ2mA1b_Zt=p0Lw@mail.gmail.com>"
    assert got.in_reply_to == ("<d4e5f6.ticket-123@e-comet.io>",)
    assert got.references == ("<a1b2c3.ticket-123@e-comet.io>", "<d4e5f6.ticket-123@e-comet.io>")
    assert got.sender == "ivan.petrov@gmail.com"
    assert got.sender_name == "Иван Петров"
    assert got.subject == "Re: [#123] Не работает выгрузка отчётов по складам"
    assert ticket_number_in(got.subject) == 123
    assert topic_of(got.subject) == "Не работает выгрузка отчётов по складам"
    assert got.text == "Да, вот номер счёта: 12345678.\nВыгрузка всё ещё падает с ошибкой 500."
    assert "Уточните, пожалуйста" in got.full_text
    assert got.attachments == ()
    assert got.date == datetime(2024, 3, 14, 12, 40, 5, tzinfo=timezone(timedelta(hours=3)))
    assert got.automated is None
    assert got.locale is None
    assert account_number_in(got.text, ACCOUNT) == "12345678"


def test_gmail_html_part_cleans_to_the_same_words() -> None:
    assert clean_body(html_to_text(GMAIL_HTML)) == (
        "Да, вот номер счёта: 12345678.\nВыгрузка всё ещё падает с ошибкой 500."
    )


THUNDERBIRD_FLOWED = mail(
    """
    Message-ID: <5c1d2e3f-aaaa-bbbb-cccc-0123456789ab@romashka.ru>
    Date: Thu, 14 Mar 2024 13:05:00 +0300
    MIME-Version: 1.0
    User-Agent: Mozilla Thunderbird
    Content-Language: ru
    To: e-Comet Support <support@e-comet.io>
    From: =?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivanov@romashka.ru>
    Subject: Re: [#77] =?UTF-8?B?0J7RiNC40LHQutCwINCy0YvQs9GA0YPQt9C60Lg=?=
    In-Reply-To: <d4e5f6.ticket-77@e-comet.io>
    Content-Type: text/plain; charset=UTF-8; format=flowed
    Content-Transfer-Encoding: 8bit

    14.03.2024 12:34, e-Comet Support пишет:
    > Здравствуйте! Опишите, пожалуйста, что именно происходит.

    Проблема повторилась сегодня утром: при выгрузке отчёта по складам${sp}
    страница зависает.

    --${sp}
    Иван Петров
    ООО «Ромашка»
""",
    sp=" ",  # trailing spaces matter here: flowed soft breaks, the "-- " delimiter
)


def test_thunderbird_bottom_post_with_flowed_text_and_signature() -> None:
    got = parse_mail(THUNDERBIRD_FLOWED)
    assert got.subject == "Re: [#77] Ошибка выгрузки"
    assert got.locale == "ru"
    # The one quoted line stays as the context of the answer below it.
    assert got.text == (
        "> Здравствуйте! Опишите, пожалуйста, что именно происходит.\n\n"
        "Проблема повторилась сегодня утром: при выгрузке отчёта по складам страница зависает."
    )
    assert "Иван Петров\nООО «Ромашка»" in got.full_text
    assert "Ромашка" not in got.text


OUTLOOK_ORIGINAL_MESSAGE = mail("""
    From: "Smith, John" <John.Smith@Contoso.com>
    To: "support@e-comet.io" <support@e-comet.io>
    Subject: RE: [#77] Export fails
    Thread-Topic: [#77] Export fails
    Thread-Index: AQHadWJ0dGVzdCBpbmRleA==
    Date: Thu, 14 Mar 2024 09:40:05 +0000
    Message-ID: <DB9PR01MB1234ABCD5678EF90123456789ABCDEF0@DB9PR01MB1234.eurprd01.prod.outlook.com>
    References: <a1b2c3.ticket-77@e-comet.io>
    In-Reply-To: <a1b2c3.ticket-77@e-comet.io>
    Accept-Language: en-US
    Content-Language: en-US
    X-MS-Has-Attach:
    X-MS-TNEF-Correlator:
    Content-Type: text/plain; charset="us-ascii"
    Content-Transfer-Encoding: quoted-printable
    MIME-Version: 1.0

    Hi,

    It still fails after the update. Account 55501234.

    Regards,
    John Smith

    -----Original Message-----
    From: e-Comet Support <support@e-comet.io>=20
    Sent: Thursday, March 14, 2024 9:34 AM
    To: Smith, John <John.Smith@Contoso.com>
    Subject: [#77] Export fails

    Hello! Please tell us your account number 0000.
""")


def test_outlook_original_message_keeps_the_sign_off() -> None:
    got = parse_mail(OUTLOOK_ORIGINAL_MESSAGE)
    assert got.sender == "john.smith@contoso.com"
    assert got.sender_name == "Smith, John"
    assert got.locale == "en"
    assert (
        got.text
        == "Hi,\n\nIt still fails after the update. Account 55501234.\n\nRegards,\nJohn Smith"
    )
    assert account_number_in(got.text, ACCOUNT) == "55501234"
    assert "Please tell us" in got.full_text
    assert got.message_id.endswith("prod.outlook.com>")


OUTLOOK_RU_HTML = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    "<style><!-- p.MsoNormal {margin:0cm; font-family:Calibri} --></style></head>"
    '<body lang=RU link="#0563C1"><div class=WordSection1>'
    "<p class=MsoNormal>Добрый день!<o:p></o:p></p>"
    "<p class=MsoNormal>Ошибка осталась, скриншот во вложении.<o:p></o:p></p>"
    "<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
    "<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>"
    "<p class=MsoNormal><b>От:</b> e-Comet Support &lt;support@e-comet.io&gt; <br>"
    "<b>Отправлено:</b> 14 марта 2024 г. 12:34<br><b>Кому:</b> Иванов Иван "
    "&lt;ivanov@romashka.ru&gt;<br><b>Тема:</b> [#77] Ошибка выгрузки<o:p></o:p></p></div></div>"
    "<p class=MsoNormal>Здравствуйте! Уточните детали.<o:p></o:p></p></div></body></html>"
)
OUTLOOK_RU = mail(
    """
    From: $name <ivanov@romashka.ru>
    To: "support@e-comet.io" <support@e-comet.io>
    Subject: $subject
    Date: Thu, 14 Mar 2024 10:01:00 +0000
    Message-ID: <AM0PR01MB5555@AM0PR01MB5555.eurprd01.prod.outlook.com>
    Content-Language: ru-RU
    Content-Type: text/html; charset="windows-1251"
    Content-Transfer-Encoding: base64
    MIME-Version: 1.0

    $body
""",
    name=encoded_word("Иванов Иван", "windows-1251"),
    subject=encoded_word("RE: [#77] Ошибка выгрузки", "windows-1251"),
    body=b64(OUTLOOK_RU_HTML, "cp1251"),
)


def test_outlook_html_only_in_cp1251_with_a_russian_header_block() -> None:
    got = parse_mail(OUTLOOK_RU)
    assert got.sender_name == "Иванов Иван"
    assert got.locale == "ru"
    assert got.text == "Добрый день!\n\nОшибка осталась, скриншот во вложении."
    assert "Уточните детали" in got.full_text
    assert "MsoNormal" not in got.full_text


APPLE_IPHONE = mail("""
    From: Anna Smirnova <anna@icloud.com>
    Content-Type: text/plain; charset=utf-8
    Content-Transfer-Encoding: quoted-printable
    Mime-Version: 1.0 (1.0)
    Subject: Re: [#45] Access
    Date: Thu, 14 Mar 2024 12:50:11 +0300
    Message-Id: <8F2A6C1E-1B2C-4D5E-9F00-112233445566@icloud.com>
    References: <x1.ticket-45@e-comet.io>
    In-Reply-To: <x1.ticket-45@e-comet.io>
    To: e-Comet Support <support@e-comet.io>
    X-Mailer: iPhone Mail (21D61)

    Thanks, it works now!

    Sent from my iPhone

    > On 14 Mar 2024, at 12:34, e-Comet Support <support@e-comet.io> wrote:
    >=20
    > =EF=BB=BFHello! We have restored access.
""")


def test_apple_mail_sent_from_my_iphone() -> None:
    got = parse_mail(APPLE_IPHONE)
    assert got.text == "Thanks, it works now!"
    assert "We have restored access." in got.full_text
    assert "\ufeff" not in got.full_text


HTML_ONLY_WITH_SCRIPT = mail("""
    From: "Shop owner" <owner@shop.example.org>
    To: support@e-comet.io
    Subject: The orders page
    Message-ID: <html-only-1@shop.example.org>
    MIME-Version: 1.0
    Content-Type: text/html; charset=utf-8
    Content-Transfer-Encoding: 7bit

    <html><head><title>TITLE-TEXT</title><script>document.write('HEAD-SCRIPT')</script></head>
    <body><p>The orders page is <b>broken</b> &amp; shows &lt;nothing&gt;.</p>
    <script type="text/javascript">alert('BODY-SCRIPT')</script>
    <SCRIPT>alert('UPPER-SCRIPT')</SCRIPT><script/>alert('SLASH-SCRIPT')</script>
    <p>See <a href="https://shop.example.org/orders/42">order 42</a> and
    <a href="javascript:alert('HREF-SCRIPT')">this</a>.</p>
    <img src="https://track.example.org/pixel.gif" width=1 height=1>
    <style>.x{color:red} /* STYLE-TEXT */</style><noscript>NOSCRIPT-TEXT</noscript></body></html>
""")


def test_html_only_mail_drops_scripts_and_keeps_links() -> None:
    got = parse_mail(HTML_ONLY_WITH_SCRIPT)
    assert got.text == (
        "The orders page is broken & shows <nothing>.\n\n"
        "See order 42 (https://shop.example.org/orders/42) and this."
    )
    assert not re.search(r"SCRIPT|TEXT", got.full_text)


INLINE_PLAIN = "Скриншот ниже, счёт-фактура в PDF.\n\n[image: screen.png]\n"
INLINE_HTML = (
    '<div>Скриншот ниже, счёт-фактура в PDF.</div><div><img src="cid:ii_ltq1" alt="screen.png">'
    "</div>"
)
INLINE_IMAGE_AND_PDF = mail(
    """
    From: Olga <olga@yandex.ru>
    To: support@e-comet.io
    Subject: =?utf-8?B?0KHQutGA0LjQvdGI0L7RgiDQuCDRgdGH0ZHRgg==?=
    Message-ID: <1234567890@mail.yandex.ru>
    Date: Thu, 14 Mar 2024 14:00:00 +0300
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="mixed-b"

    --mixed-b
    Content-Type: multipart/related; boundary="related-b"; type="multipart/alternative"

    --related-b
    Content-Type: multipart/alternative; boundary="alt-b"

    --alt-b
    Content-Type: text/plain; charset=utf-8
    Content-Transfer-Encoding: base64

    $plain
    --alt-b
    Content-Type: text/html; charset=utf-8
    Content-Transfer-Encoding: base64

    $html
    --alt-b--

    --related-b
    Content-Type: image/png; name="screen.png"
    Content-Disposition: inline; filename="screen.png"
    Content-Transfer-Encoding: base64
    Content-ID: <ii_ltq1>

    $png
    --related-b--

    --mixed-b
    Content-Type: application/pdf; name="=?UTF-8?B?0YHRh9GR0YIucGRm?="
    Content-Disposition: attachment; filename*=UTF-8''%D1%81%D1%87%D1%91%D1%82.pdf
    Content-Transfer-Encoding: base64

    $pdf
    --mixed-b--
""",
    plain=b64(INLINE_PLAIN),
    html=b64(INLINE_HTML),
    png=b64(PNG),
    pdf=b64(PDF),
)


def test_inline_image_and_pdf_are_attachments_and_the_text_is_the_plain_part() -> None:
    got = parse_mail(INLINE_IMAGE_AND_PDF)
    assert got.subject == "Скриншот и счёт"
    assert got.text == "Скриншот ниже, счёт-фактура в PDF.\n\n[image: screen.png]"
    assert got.attachments == (
        MailAttachment("screen.png", "image/png", PNG),
        MailAttachment("счёт.pdf", "application/pdf", PDF),
    )
    assert [a.is_image for a in got.attachments] == [True, False]


# --- encodings ---------------------------------------------------------------------------------

RUSSIAN = "Здравствуйте! Не приходит отчёт по складам, ёлки-палки."


@pytest.mark.parametrize("charset", ["koi8-r", "cp1251", "utf-8"])
@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "8bit"])
def test_bodies_in_legacy_and_unicode_charsets(charset: str, encoding: str) -> None:
    body = {
        "base64": lambda: b64(RUSSIAN, charset).encode("ascii"),
        "quoted-printable": lambda: qp(RUSSIAN, charset).encode("ascii"),
        "8bit": lambda: RUSSIAN.encode(charset),
    }[encoding]()
    raw = (
        b"From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        + f"Content-Type: text/plain; charset={charset}\r\n".encode()
        + f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
        + body.replace(b"\n", b"\r\n")
        + b"\r\n"
    )
    assert parse_mail(raw).text == RUSSIAN


@pytest.mark.parametrize("charset", ["koi8-r", "cp1251"])
@pytest.mark.parametrize("declared", [None, "us-ascii", "x-unknown-charset", "utf-8"])
def test_undeclared_or_wrong_charset_is_guessed(charset: str, declared: str | None) -> None:
    assert decode_bytes(RUSSIAN.encode(charset), declared) == RUSSIAN


@pytest.mark.parametrize(
    ("header", "name", "subject"),
    [
        (  # KOI8-R, B-encoded, as old Russian mailers write it
            "From: =?koi8-r?B?6dfBziDw1dDLyc4=?= <ivan@mail.ru>\r\n"
            "Subject: =?koi8-r?b?8NLPwszFzcEg0yDP1N7F1M/N?=\r\n",
            "Иван Пупкин",
            "Проблема с отчетом",
        ),
        (  # UTF-8, Q-encoded, one word split over two encoded words and a folded line
            "From: =?utf-8?q?=D0=9E=D0=BB=D1=8C=D0=B3=D0=B0?= <olga@x.ru>\r\n"
            "Subject: =?utf-8?q?=D0=9E=D1=88=D0=B8=D0=B1?=\r\n =?utf-8?q?=D0=BA=D0=B0_500?=\r\n",
            "Ольга",
            "Ошибка 500",
        ),
        (  # windows-1251 in a quoted display name
            'From: "=?windows-1251?b?zuv84+Ag3vD85eLt4A==?=" <o@x.ru>\r\n'
            "Subject: =?windows-1251?Q?=CF=F0=E8=E2=E5=F2?=\r\n",
            "Ольга Юрьевна",
            "Привет",
        ),
        (  # RFC 6532: raw UTF-8 in headers
            "From: Пётр <petr@x.ru>\r\nSubject: Не   работает\r\n\tвход\r\n",
            "Пётр",
            "Не работает вход",
        ),
    ],
)
def test_encoded_names_and_subjects(header: str, name: str, subject: str) -> None:
    raw = header.encode("utf-8") + b"Message-ID: <e@x>\r\n\r\nbody\r\n"
    got = parse_mail(raw)
    assert (got.sender_name, got.subject) == (name, subject)


def test_raw_cp1251_bytes_in_headers_are_read() -> None:
    raw = "From: Иван <ivan@x.ru>\r\nSubject: Привет\r\n\r\nтекст\r\n".encode("cp1251")
    got = parse_mail(raw)
    assert (got.sender_name, got.subject, got.text) == ("Иван", "Привет", "текст")


# --- headers ---------------------------------------------------------------------------------


def test_missing_message_id_gets_a_stable_synthetic_one() -> None:
    raw = mail("""
        From: a@example.com
        Subject: no id

        hello
    """)
    first, again = parse_mail(raw), parse_mail(raw)
    assert re.fullmatch(r"<[0-9a-f]{40}@synthetic\.invalid>", first.message_id)
    assert first.message_id == again.message_id
    assert parse_mail(raw + b"!").message_id != first.message_id


def test_ids_without_brackets_and_repeated_references() -> None:
    raw = mail("""
        From: a@example.com
        Message-ID: bare-id@example.com
        In-Reply-To: <p1@x> (sent by Outlook)
        References: <r1@x>,<r2@x>
         <r1@x>
        References: <r3@x>

        hi
    """)
    got = parse_mail(raw)
    assert got.message_id == "<bare-id@example.com>"
    assert got.in_reply_to == ("<p1@x>",)
    assert got.references == ("<r1@x>", "<r2@x>", "<r3@x>")


def test_a_huge_references_header_keeps_the_root_and_the_newest() -> None:
    ids = [f"<id{i}@x>" for i in range(500)]
    raw = ("From: a@x.io\r\nReferences: " + "\r\n ".join(ids) + "\r\n\r\nhi\r\n").encode()
    got = parse_mail(raw)
    assert len(got.references) == 100
    assert got.references[0] == "<id0@x>"
    assert got.references[-1] == "<id499@x>"


@pytest.mark.parametrize(
    ("headers", "locale"),
    [
        ("Content-Language: ru-RU\r\n", "ru"),
        ("Content-Language: en, ru\r\n", "en"),
        ("Accept-Language: en-US,en;q=0.9,ru;q=0.8\r\n", "en"),
        ("Accept-Language: de;q=0.3, ru-RU\r\n", "ru"),
        ("Accept-Language: ru-RU, en-US\r\nContent-Language: en-GB\r\n", "en"),
        ("Content-Language: *\r\n", None),
        ("", None),
    ],
)
def test_locale_from_headers(headers: str, locale: str | None) -> None:
    raw = ("From: a@x.io\r\n" + headers + "\r\nhi\r\n").encode()
    assert parse_mail(raw).locale == locale


def test_locale_from_the_body_part() -> None:
    raw = mail("""
        From: a@x.io
        Content-Type: multipart/alternative; boundary=b

        --b
        Content-Type: text/plain; charset=utf-8
        Content-Language: ru

        привет
        --b--
    """)
    assert parse_mail(raw).locale == "ru"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Thu, 14 Mar 2024 12:40:05 +0300", datetime(2024, 3, 14, 9, 40, 5, tzinfo=UTC)),
        ("Thu, 14 Mar 2024 12:40:05 -0000", datetime(2024, 3, 14, 12, 40, 5, tzinfo=UTC)),
        ("yesterday at noon", None),
        ("Thu, 99 Foo 2024 99:99:99 +9999", None),
    ],
)
def test_date(value: str, expected: datetime | None) -> None:
    got = parse_mail(f"From: a@x.io\r\nDate: {value}\r\n\r\nhi\r\n".encode()).date
    assert got == expected
    assert got is None or got.tzinfo is not None


def test_reply_to_is_kept_when_it_differs() -> None:
    raw = (
        b"From: Site form <noreply@shop.io>\r\nReply-To: Client <Client@Example.com>\r\n\r\nhi\r\n"
    )
    assert parse_mail(raw).reply_to == "client@example.com"
    same = b"From: a@x.io\r\nReply-To: A@x.io\r\n\r\nhi\r\n"
    assert parse_mail(same).reply_to is None


def test_sender_name_falls_back_to_the_local_part() -> None:
    assert parse_mail(b"From: ivan.petrov@x.io\r\n\r\nhi\r\n").sender_name == "ivan.petrov"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("e-Comet Support <Support@E-Comet.io>", "support@e-comet.io"),
        ("support@e-comet.io", "support@e-comet.io"),
        ("=?utf-8?b?0J/QvtC00LTQtdGA0LbQutCw?= <s@x.io>", "s@x.io"),
        ("no address here", None),
        ("", None),
    ],
)
def test_address_in(value: str, expected: str | None) -> None:
    assert address_in(value) == expected


# --- noise -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ("Auto-Submitted: auto-replied\r\nSubject: Re: [#5] x\r\n", "auto-reply"),
        ("Auto-Submitted: auto-generated\r\nSubject: Your invoice\r\n", "auto-submitted"),
        ("Auto-Submitted: auto-notified\r\n", "auto-submitted"),
        ("Precedence: bulk\r\nSubject: Sale!\r\n", "bulk"),
        ("Precedence: junk\r\n", "bulk"),
        ("X-Autoreply: yes\r\nSubject: Re: x\r\n", "auto-reply"),
        ("X-Autorespond: Re: x\r\n", "auto-reply"),
        ("Subject: =?utf-8?b?0JDQstGC0L7QvtGC0LLQtdGCOiBbIzVdIHg=?=\r\n", "auto-reply"),
        ("Subject: Out of Office: [#5] Export fails\r\n", "auto-reply"),
        ("Subject: Automatic reply: [#5] Export fails\r\n", "auto-reply"),
        ("Subject: Автоматический ответ: Ошибка\r\n", "auto-reply"),
        ("Return-Path: <>\r\nSubject: Notice\r\n", "auto-submitted"),
        # A person's mail, including one that passed through a group alias.
        ("Auto-Submitted: no\r\nSubject: Help\r\n", None),
        ("Precedence: list\r\nList-Id: <support.e-comet.io>\r\nSubject: Help\r\n", None),
        ("Subject: Re: out of office hours support?\r\n", None),
        ("Subject: I am out of ideas, export fails\r\n", None),
        ("Subject: OOO Romashka: access\r\n", None),
        (
            "Subject: =?utf-8?b?0JIg0L7RgtC/0YPRgdC60LUg0L3QtSDRgNCw0LHQvtGC0LDQtdGCIFZQTg==?=\r\n",
            None,
        ),
    ],
)
def test_automated_mail_is_recognised(headers: str, why: str | None) -> None:
    raw = ("From: someone@example.com\r\n" + headers + "\r\nI am away.\r\n").encode()
    assert parse_mail(raw).automated == why


DSN_BOUNCE = mail("""
    Return-Path: <>
    Delivered-To: support@e-comet.io
    From: MAILER-DAEMON@mx.e-comet.io (Mail Delivery System)
    Subject: Undelivered Mail Returned to Sender
    To: support@e-comet.io
    Auto-Submitted: auto-replied
    MIME-Version: 1.0
    Content-Type: multipart/report; report-type=delivery-status;
    \tboundary="8C6A21C0A4.1710409445/mx.e-comet.io"
    Message-Id: <20240314093405.1A2B3C0A4@mx.e-comet.io>
    Date: Thu, 14 Mar 2024 09:34:05 +0000 (UTC)

    This is a MIME-encapsulated message.

    --8C6A21C0A4.1710409445/mx.e-comet.io
    Content-Description: Notification
    Content-Type: text/plain; charset=us-ascii

    This is the mail system at host mx.e-comet.io.

    I'm sorry to have to inform you that your message could not
    be delivered to one or more recipients.

    <nobody@example.com>: host mx.example.com said: 550 5.1.1 User unknown

    --8C6A21C0A4.1710409445/mx.e-comet.io
    Content-Description: Delivery report
    Content-Type: message/delivery-status

    Reporting-MTA: dns; mx.e-comet.io
    Arrival-Date: Thu, 14 Mar 2024 09:34:04 +0000 (UTC)

    Final-Recipient: rfc822; nobody@example.com
    Action: failed
    Status: 5.1.1
    Diagnostic-Code: smtp; 550 5.1.1 User unknown

    --8C6A21C0A4.1710409445/mx.e-comet.io
    Content-Description: Undelivered Message
    Content-Type: message/rfc822

    From: e-Comet Support <support@e-comet.io>
    To: nobody@example.com
    Subject: [#9] Your request
    Message-ID: <abc.ticket-9@e-comet.io>

    Hello!

    --8C6A21C0A4.1710409445/mx.e-comet.io--
""")


def test_dsn_bounce() -> None:
    got = parse_mail(DSN_BOUNCE)
    assert got.automated == "bounce"
    assert got.sender == "mailer-daemon@mx.e-comet.io"
    assert "User unknown" in got.full_text
    assert "Reporting-MTA" not in got.full_text
    assert [a.content_type for a in got.attachments] == ["message/rfc822"]
    assert got.attachments[0].filename == "[#9] Your request.eml"
    assert b"Message-ID: <abc.ticket-9@e-comet.io>" in got.attachments[0].data


def test_bounce_from_a_daemon_without_a_report() -> None:
    raw = b"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\nSubject: Delivery Status Notification (Failure)\r\n\r\nAddress not found\r\n"
    assert parse_mail(raw).automated == "bounce"


def test_read_receipt_is_noise() -> None:
    raw = mail("""
        From: a@x.io
        Content-Type: multipart/report; report-type=disposition-notification; boundary=r

        --r
        Content-Type: text/plain

        Your message was read.
        --r--
    """)
    assert parse_mail(raw).automated == "auto-reply"


# --- damage and garbage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n\r\n",
        b"\x00\xff\xfe\x00 garbage",
        b"just some text without headers",
        b"::::\r\n\r\n",
        b"Subject: no sender\r\n\r\nbody\r\n",
        b"From: \r\n\r\nbody\r\n",
        b"From: a@\r\n\r\nbody\r\n",  # crashes the email package's address parser
        b"From: undisclosed-recipients:;\r\n\r\nbody\r\n",
        b"From: root\r\n\r\nlocal mail\r\n",
    ],
)
def test_unreadable_mail_raises_mail_parse_error(raw: bytes) -> None:
    with pytest.raises(MailParseError):
        parse_mail(raw)


def test_parse_mail_refuses_what_is_not_bytes() -> None:
    with pytest.raises(MailParseError):
        parse_mail("From: a@b.c\r\n\r\nx")  # type: ignore[arg-type]


def test_damaged_parts_are_read_as_far_as_they_go() -> None:
    raw = mail("""
        From: a@x.io
        Subject: =?utf-8?q?=FF=FE?= broken
        Date: not a date
        Content-Type: multipart/mixed; boundary=b

        --b
        Content-Type: text/plain; charset=no-such-charset
        Content-Transfer-Encoding: base64

        0J/RgNC40LLQtdGC!!!
        --b
        Content-Type: image/png; name=x.png
        Content-Transfer-Encoding: base64

        not base64 at all
        --b
    """)
    got = parse_mail(raw)
    assert got.text.startswith("Привет")
    assert got.subject.endswith("broken")
    assert got.date is None
    _assert_storable(got)


def _assert_storable(got: IncomingMail) -> None:
    """Every string must survive UTF-8 (the database, Telegram): no lone surrogates."""
    for value in (
        got.message_id,
        got.sender,
        got.sender_name,
        got.subject,
        got.text,
        got.full_text,
        *got.in_reply_to,
        *got.references,
        *(a.filename for a in got.attachments),
        *(a.content_type for a in got.attachments),
    ):
        value.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_mail_raises_nothing_but_mail_parse_error_on_any_bytes(raw: bytes) -> None:
    try:
        got = parse_mail(raw)
    except MailParseError:
        return
    _assert_storable(got)


HEADER_NAMES = [
    "From", "Subject", "Message-ID", "In-Reply-To", "References", "Date", "Content-Type",
    "Content-Transfer-Encoding", "Content-Disposition", "Content-Language", "Reply-To",
    "Auto-Submitted", "Return-Path", "Accept-Language", "MIME-Version",
]  # fmt: skip
HEADER_VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from([
        "a@b.c", "<a@b.c>", "=?utf-8?q?=FF?= <a@b.c>", "=?x?b?!!?=", "multipart/mixed; boundary=q",
        "multipart/alternative; boundary=q", "text/html; charset=koi8-r", "base64",
        "quoted-printable", "attachment; filename*=utf-8''%FF", "Thu, 99 Foo", "a@", '"@"@',
        "message/rfc822", "multipart/report; report-type=delivery-status; boundary=q",
    ]),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(HEADER_NAMES), HEADER_VALUES), max_size=10),
    st.lists(
        st.one_of(st.text(max_size=40), st.sampled_from(["--q", "--q--", "<script>x", "\r\n"])),
        max_size=10,
    ),
)
def test_parse_mail_survives_mail_shaped_junk(
    headers: list[tuple[str, str]], body: list[str]
) -> None:
    raw = (
        "From: a@b.c\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers)
        + "\r\n"
        + "\r\n".join(body)
    ).encode("utf-8", "surrogatepass")
    try:
        got = parse_mail(raw)
    except MailParseError:
        return
    _assert_storable(got)


# --- attachments ---------------------------------------------------------------------------------


def _with_attachment(content_type: str, disposition: str, data: bytes) -> bytes:
    return mail(
        """
        From: a@x.io
        Content-Type: multipart/mixed; boundary=b

        --b
        Content-Type: text/plain

        see attached
        --b
        Content-Type: $content_type
        Content-Disposition: $disposition
        Content-Transfer-Encoding: base64

        $data
        --b--
    """,
        content_type=content_type,
        disposition=disposition,
        data=b64(data),
    )


@pytest.mark.parametrize(
    ("content_type", "disposition", "expected"),
    [
        ("image/png", 'attachment; filename="../../etc/passwd"', ("passwd", "image/png")),
        (
            "image/png",
            'attachment; filename="C:\\\\Users\\\\x\\\\shot.png"',
            ("shot.png", "image/png"),
        ),
        ("image/png", "inline", ("image-1.png", "image/png")),
        (
            "application/octet-stream",
            'attachment; filename="photo.bin"',
            ("photo.bin", "image/png"),
        ),
        ("image/jpg", 'attachment; filename="a.png"', ("a.png", "image/png")),
        ("application/octet-stream", 'attachment; filename=".hidden"', ("hidden", "image/png")),
    ],
)
def test_attachment_names_are_safe_and_types_true(
    content_type: str, disposition: str, expected: tuple[str, str]
) -> None:
    (got,) = parse_mail(_with_attachment(content_type, disposition, PNG)).attachments
    assert (got.filename, got.content_type) == expected
    assert got.data == PNG


def test_octet_stream_takes_its_type_from_the_name() -> None:
    raw = _with_attachment("application/octet-stream", 'attachment; filename="r.pdf"', PDF)
    assert parse_mail(raw).attachments[0].content_type == "application/pdf"


def test_text_files_and_signatures() -> None:
    raw = mail("""
        From: a@x.io
        Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary=s

        --s
        Content-Type: multipart/mixed; boundary=b

        --b
        Content-Type: text/plain; charset=utf-8

        log attached
        --b
        Content-Type: text/plain; name=error.log
        Content-Disposition: attachment; filename=error.log

        line 1
        --b--
        --s
        Content-Type: application/pgp-signature; name=signature.asc

        -----BEGIN PGP SIGNATURE-----
        --s--
    """)
    got = parse_mail(raw)
    assert got.text == "log attached"
    assert [(a.filename, a.content_type, a.data) for a in got.attachments] == [
        ("error.log", "text/plain", b"line 1")
    ]


@pytest.mark.parametrize(
    ("content_type", "data", "is_image"),
    [
        ("image/png", PNG, True),
        ("image/jpeg", b"\xff\xd8\xff\xe0", True),
        ("image/gif", b"GIF89a", True),
        ("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        ("image/svg+xml", b"<svg/>", False),
        ("image/tiff", b"II*\x00", False),
        ("application/pdf", PDF, False),
    ],
)
def test_is_image_is_what_telegram_shows_as_a_photo(
    content_type: str, data: bytes, is_image: bool
) -> None:
    assert MailAttachment("f", content_type, data).is_image is is_image


# --- clean_body -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "Thanks!\n\nOn Thu, Mar 14, 2024 at 12:34 PM e-Comet Support <\nsupport@e-comet.io> wrote:\n\n> Hello\n> there",
            "Thanks!",
            id="gmail-en-wrapped-attribution",
        ),
        pytest.param(
            'Спасибо!\n\n14.03.2024, 12:34, "e-Comet Support" <support@e-comet.io>:\n> Здравствуйте',
            "Спасибо!",
            id="yandex",
        ),
        pytest.param(
            "Спасибо!\n\n\nЧетверг, 14 марта 2024, 12:34 +03:00 от e-Comet Support <support@e-comet.io>:\n\n> Здравствуйте",
            "Спасибо!",
            id="mail.ru",
        ),
        pytest.param(
            "Ок, жду.\n\n14 марта 2024 г., в 12:34, e-Comet Support <support@e-comet.io> написал(а):\n\n> Здравствуйте",
            "Ок, жду.",
            id="apple-mail-ru",
        ),
        pytest.param(
            "Ок.\n\n14.03.2024 12:34, Support пишет:\nЗдравствуйте (unquoted history)",
            "Ок.",
            id="thunderbird-ru-without-quote-marks",
        ),
        pytest.param(
            "Готово.\n\n-----Исходное сообщение-----\nОт: Support\nОтправлено: 14 марта\n\nтекст",
            "Готово.",
            id="outlook-ru-original-message",
        ),
        pytest.param(
            "Fine.\n\n________________________________\nFrom: Support <s@e-comet.io>\nSent: Thursday, March 14, 2024 9:34 AM\nTo: John\nSubject: [#7] x\n\nold",
            "Fine.",
            id="outlook-web-from-block",
        ),
        pytest.param(
            "Ответ выше.\n\n*От:* Support\n*Дата:* 14.03.2024\n*Тема:* x\n\nстарое",
            "Ответ выше.",
            id="outlook-ru-bold-block",
        ),
        pytest.param(
            'Смотрите ниже.\n\n-------- Пересылаемое сообщение --------\n14.03.2024, 12:34, "Bank" <b@bank.ru>:\nТекст банка',
            "Смотрите ниже.",
            id="forward-with-comment",
        ),
        pytest.param(
            "-------- Пересылаемое сообщение --------\nОт: Bank <b@bank.ru>\nТема: Ошибка\n\nТекст банка",
            "-------- Пересылаемое сообщение --------\nОт: Bank <b@bank.ru>\nТема: Ошибка\n\nТекст банка",
            id="forward-without-comment-keeps-the-forward",
        ),
        pytest.param(
            "Please see below.\n\n---------- Forwarded message ---------\nFrom: X <x@y.z>\n\nhi",
            "Please see below.",
            id="gmail-forward",
        ),
        pytest.param(
            "Текст.\n\n-- \nИван Петров\n+7 999 123-45-67",
            "Текст.",
            id="sig-delimiter",
        ),
        pytest.param("Текст.\n\nОтправлено с iPhone", "Текст.", id="ru-iphone"),
        pytest.param(
            "Текст.\n\nОтправлено из мобильной Почты Mail.ru", "Текст.", id="mail.ru-mobile"
        ),
        pytest.param(
            "Текст.\n\nОтправлено из мобильной Яндекс Почты", "Текст.", id="yandex-mobile"
        ),
        pytest.param("Text.\n\nGet Outlook for Android", "Text.", id="outlook-mobile"),
        pytest.param(
            "Отправлено с задержкой, извините.\nСчёт 1234.",
            "Отправлено с задержкой, извините.\nСчёт 1234.",
            id="not-a-signature",
        ),
        pytest.param(
            "С уважением,\nИван Петров\nООО «Ромашка»",
            "С уважением,\nИван Петров\nООО «Ромашка»",
            id="sign-off-is-the-customers",
        ),
        pytest.param(
            "My colleague wrote:\nthe export fails with error 500",
            "My colleague wrote:\nthe export fails with error 500",
            id="wrote-in-a-sentence-without-a-quote",
        ),
        pytest.param(
            "> Your account number?\n12345678\n> Which browser?\nChrome 122\n> Thanks\n> Support",
            "> Your account number?\n12345678\n> Which browser?\nChrome 122",
            id="inline-answers",
        ),
        pytest.param(
            "On Mon, Support wrote:\n> one\n> two\n> three\n> four\n> five\n\nmy answer\n\n-- \nJohn",
            "> …\n> three\n> four\n> five\n\nmy answer",
            id="bottom-post-keeps-a-little-context",
        ),
        pytest.param("> only\n> a quote", "", id="quote-only"),
        pytest.param("", "", id="empty"),
        pytest.param("a\r\nb   \r\n\r\n\r\n\r\nc", "a\nb\n\nc", id="normalised"),
    ],
)
def test_clean_body(body: str, expected: str) -> None:
    assert clean_body(body) == expected


def test_unflow() -> None:
    text = "one \ntwo\n> quoted \n> more\n>> deep \n>> er\n-- \nsig"
    assert unflow(text) == "one two\n> quoted more\n>> deep er\n-- \nsig"
    assert unflow("wo \nrd", delsp=True) == "word"
    assert unflow(" >stuffed") == ">stuffed"


# --- html_to_text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>a &amp; b &lt;c&gt; &quot;d&quot; &#1046; &nbsp;e</p>", 'a & b <c> "d" Ж e'),
        ("<div>one</div><div>two<br>three</div>", "one\ntwo\nthree"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<ul><li>a</li><li>b</ul><ol><li>x<li>y</ol>", "- a\n- b\n1. x\n2. y"),
        ('<a href="https://x.io/p?q=1&amp;r=2">page</a>', "page (https://x.io/p?q=1&r=2)"),
        ('<a href="https://x.io/">https://x.io/</a>', "https://x.io/"),
        ('<a href="mailto:s@x.io?subject=hi">write us</a>', "write us (s@x.io)"),
        ('<a href="javascript:steal()">click</a>', "click"),
        ('<a href="https://x.io"><img src="cid:1"></a>', "https://x.io"),
        ("<blockquote>q<blockquote>qq</blockquote></blockquote>after", "> q\n>\n> > qq\n\nafter"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a  b\nc"),
        ("<pre>  x = 1\n  y = 2</pre>", "  x = 1\n  y = 2"),
        ("a<!-->b<!--->c<!-- x --!>d<!-- unclosed <script>", "abcd"),
        ("<![foo[x]]>after", "after"),
        ("<head><title>T</title><body>visible", "visible"),
        ("<![if !mso]><p>shown</p><![endif]><!--[if mso]>hidden<![endif]-->", "shown"),
        ("plain text, no tags", "plain text, no tags"),
        ("<p>a\u200bb\ufeff</p>", "ab"),
        # Browsers read a tag named "scr<script" here; reading a script is the safe side.
        ("<scr<script>ipt>alert(1)</script>after", "<scr after"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_to_text_with_telegram_line_breaks() -> None:
    html = "<b>Ticket 12</b>\nYour answer:\n\n<a href='https://x.io'>open</a>"
    assert html_to_text(html, keep_line_breaks=True) == (
        "Ticket 12\nYour answer:\n\nopen (https://x.io)"
    )


SECRET = "S3CR3T"
SCRIPT_WRAPPINGS = [
    "<script>{s}</script>",
    "<SCRIPT type=text/javascript>{s}</SCRIPT>",
    "<script>{s}",
    "<script/>{s}</script>",
    "<script>x</scr{s}ipt></script>",
    "<script>'</script'{s}</script>",
    "<style>{s}</style>",
    "<script><!--{s}--></script>",
    "<script>document.write('<p>{s}</p>')</script>",
    "<svg><script>{s}</script></svg>",
    "<head><script>{s}</script></head><body>",
    "<script>{s}</script  >",
    "<script\n>{s}</script>",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "<p>",
                    "</p>",
                    "<div>",
                    "<b>",
                    "</b>",
                    "<br>",
                    "<a href='x'>",
                    "</a>",
                    "<body>",
                    "<blockquote>",
                    "</script>",
                    "-->",
                    "<!--",
                    "&amp;",
                    "<",
                    ">",
                ]
            ),
            st.text(alphabet="abc <>/=\"'&;!-", max_size=12),
        ),
        max_size=8,
    ),
    st.sampled_from(SCRIPT_WRAPPINGS),
    st.lists(st.sampled_from(["<p>after</p>", "text", "</div>", "<i>x</i>"]), max_size=4),
)
def test_script_content_never_reaches_the_text(
    before: list[str], wrapping: str, after: list[str]
) -> None:
    html = "".join(before) + wrapping.format(s=SECRET) + "".join(after)
    assert SECRET not in html_to_text(html)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_html_to_text_never_raises(html: str) -> None:
    html_to_text(html).encode("utf-8")
    html_to_text(html, keep_line_breaks=True).encode("utf-8")


# --- subjects and numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "number"),
    [
        ("Re: [#123] Не работает", 123),
        ("Ошибка выгрузки [#7]", 7),
        ("[#12] Re: [#34] x", 12),
        ("#123 без скобок", None),
        ("[# 123]", None),
        ("[#abc]", None),
        ("", None),
    ],
)
def test_ticket_number_in(subject: str, number: int | None) -> None:
    assert ticket_number_in(subject) == number


@pytest.mark.parametrize(
    ("subject", "topic"),
    [
        ("Re: [#123] Не работает выгрузка", "Не работает выгрузка"),
        ("RE: Fwd: FW: Ответ: ПЕРЕСЛ: Ошибка", "Ошибка"),
        ("re:re:  re :   x", "x"),
        ("Re[2]: Отв: Re: [#1] тема [#2]", "тема"),
        ("Fw: Re: [#5] Fwd:   многоточие  \t тест", "многоточие тест"),
        ("AW: WG: Rechnung", "Rechnung"),
        ("Reply needed", "Reply needed"),
        ("Regarding: invoice", "Regarding: invoice"),
        ("Re:", ""),
        ("", ""),
    ],
)
def test_topic_of(subject: str, topic: str) -> None:
    assert topic_of(subject) == topic


def test_topic_of_trims_at_a_word_boundary() -> None:
    subject = "Не работает выгрузка отчётов по складам за прошлый месяц у всех пользователей"
    assert topic_of(subject, 40) == "Не работает выгрузка отчётов по…"
    assert topic_of("x" * 50, 10) == "xxxxxxxxx…"


@settings(max_examples=300)
@given(st.text(max_size=150), st.integers(min_value=0, max_value=120))
def test_topic_of_is_idempotent_and_within_the_limit(subject: str, limit: int) -> None:
    topic = topic_of(subject, limit)
    assert topic_of(topic, limit) == topic
    assert len(topic) <= limit
    assert ticket_number_in(topic) is None


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("счёт 12345678.", "12345678"),
        ("Номер счета: 12345678, спасибо", "12345678"),
        ("счёт:87654321", "87654321"),
        ("ЛС№55512345", "55512345"),
        ("(id 4242)", "4242"),
        ("С 1 марта 2024 не работает, мой аккаунт 5551234", "5551234"),
        ("С 1 марта 2024 не работает", "2024"),
        ("Re: [#1234] ошибка", None),
        ("звоните +79991234567", None),
        ("дата 14.03.2024 и время 12:34", None),
        ("123 и 45", None),
        ("", None),
    ],
)
def test_account_number_in(text: str, found: str | None) -> None:
    assert account_number_in(text, ACCOUNT) == found


def test_account_number_in_applies_the_patterns_anchors_to_the_token() -> None:
    assert account_number_in("client AB-1234 here", r"^[A-Z]{2}-\d{4}$") == "AB-1234"
    assert account_number_in("x 12345678901", r"^\d{4,8}$") is None
    assert account_number_in("x 12345678", re.compile(r"^\d{8}$")) == "12345678"
