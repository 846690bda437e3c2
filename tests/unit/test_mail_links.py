"""Signed links of mails (SPEC §10): for that ticket, that action and that resolution only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from bot.channels.mail.links import NOT_SOLVED, SOLVED, MailLinks

LINKS = MailLinks(secret="123456:token", public_url="https://desk.example.org/")


def _parts(url: str) -> tuple[int, str, str, str]:
    parts = urlsplit(url)
    _, _, number, action = parts.path.split("/")
    query = parse_qs(parts.query)
    return int(number), action, query["r"][0], query["s"][0]


def test_buttons_become_links_of_their_ticket() -> None:
    solved = LINKS.for_button(7, 2, "ok:7:1")
    assert solved is not None and solved.startswith("https://desk.example.org/mail/7/solved?")
    assert LINKS.check(*_parts(solved)) == LINKS.check(7, SOLVED, "2", _parts(solved)[3])
    not_solved = LINKS.for_button(7, 0, "ok:7:0")
    assert not_solved is not None and _parts(not_solved)[1] == NOT_SOLVED
    rate = LINKS.for_button(7, 0, "rate:7:4")
    assert rate is not None
    link = LINKS.check(*_parts(rate))
    assert link is not None and link.score == 4
    # Buttons with no page, and a button naming another ticket, are left out.
    assert LINKS.for_button(7, 0, "rate:7:0") is None
    assert LINKS.for_button(7, 0, "cm:7") is None
    assert LINKS.for_button(7, 0, "ok:8:1") is None


def test_a_link_cannot_be_turned_into_another() -> None:
    url = LINKS.for_button(7, 1, "ok:7:1")
    assert url is not None
    number, action, round_, signature = _parts(url)
    assert LINKS.check(number, action, round_, signature) is not None
    assert LINKS.check(8, action, round_, signature) is None  # another ticket
    assert LINKS.check(number, NOT_SOLVED, round_, signature) is None  # another action
    assert LINKS.check(number, action, "0", signature) is None  # an earlier resolution
    assert LINKS.check(number, "close", round_, signature) is None
    assert LINKS.check(number, action, "1e9", signature) is None
    other = MailLinks(secret="654321:other", public_url="https://desk.example.org")
    assert other.check(number, action, round_, signature) is None  # another desk's key


@given(
    number=st.integers(1, 2**62),
    round_=st.integers(0, 999),
    forged=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
)
def test_a_forged_signature_is_refused(number: int, round_: int, forged: str) -> None:
    real = LINKS.signature(number, SOLVED, round_)
    expected = None if forged != real else LINKS.check(number, SOLVED, str(round_), real)
    assert LINKS.check(number, SOLVED, str(round_), forged) == expected
