"""Validation of the customer's request dialog (SPEC §4, §7 ACCOUNT_NUMBER_PATTERN)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.intake import (
    DESCRIPTION_MAX,
    DESCRIPTION_MIN,
    TOPIC_MAX,
    TOPIC_MIN,
    TextProblem,
    check_description,
    check_topic,
    guess_kind,
    is_valid_account,
    normalize_account,
    normalize_text,
)
from bot.domain.tickets import Kind

DEFAULT_PATTERN = re.compile(r"^[0-9]{4,20}$")  # SPEC §7 default


def test_limits_are_the_ones_of_the_spec() -> None:
    assert (TOPIC_MIN, TOPIC_MAX) == (3, 100)
    assert (DESCRIPTION_MIN, DESCRIPTION_MAX) == (10, 4000)


@pytest.mark.parametrize(
    ("length", "problem"),
    [
        (1, TextProblem.TOO_SHORT),
        (2, TextProblem.TOO_SHORT),
        (3, None),
        (50, None),
        (100, None),
        (101, TextProblem.TOO_LONG),
        (1000, TextProblem.TOO_LONG),
    ],
)
def test_topic_length_boundaries(length: int, problem: TextProblem | None) -> None:
    assert check_topic("x" * length) is problem


@pytest.mark.parametrize(
    ("length", "problem"),
    [
        (1, TextProblem.TOO_SHORT),
        (9, TextProblem.TOO_SHORT),
        (10, None),
        (2000, None),
        (4000, None),
        (4001, TextProblem.TOO_LONG),
        (4096, TextProblem.TOO_LONG),
    ],
)
def test_description_length_boundaries(length: int, problem: TextProblem | None) -> None:
    assert check_description("y" * length) is problem


def test_length_counts_characters_not_bytes() -> None:
    # Cyrillic letters are two bytes in UTF-8: 100 of them are still a valid topic.
    assert check_topic("ж" * 100) is None
    assert check_topic("ж" * 101) is TextProblem.TOO_LONG
    assert check_description("ё" * 4000) is None
    assert check_description("ё" * 10) is None


@pytest.mark.parametrize("raw", [None, "", " ", "   ", "\n\n", "\t \n "])
def test_empty_or_whitespace_is_empty(raw: str | None) -> None:
    text = normalize_text(raw)
    assert text == ""
    assert check_topic(text) is TextProblem.EMPTY
    assert check_description(text) is TextProblem.EMPTY


def test_padding_does_not_count_towards_the_length() -> None:
    assert check_topic(normalize_text("  ab  ")) is TextProblem.TOO_SHORT
    assert check_topic(normalize_text("  abc  ")) is None
    assert check_description(normalize_text("   123456789   ")) is TextProblem.TOO_SHORT
    assert check_description(normalize_text("\n" + "d" * 4000 + "\n\n")) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  hello  ", "hello"),
        ("\n\nline\n", "line"),
        ("a\n\nb", "a\n\nb"),  # one blank line is kept
        ("a\n\n\nb", "a\n\nb"),  # runs of blank lines squeezed
        ("a\n\n\n\n\n\nb", "a\n\nb"),
        ("a\nb\nc", "a\nb\nc"),
        ("inner   spaces kept", "inner   spaces kept"),
        ("<b>not html</b> & co", "<b>not html</b> & co"),  # text is kept verbatim
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@given(st.text(max_size=300))
def test_normalize_text_is_idempotent_and_trimmed(raw: str) -> None:
    once = normalize_text(raw)
    assert normalize_text(once) == once
    assert once == once.strip()
    assert "\n\n\n" not in once


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345678", "12345678"),
        ("1234 5678", "12345678"),
        ("1234-5678", "12345678"),
        (" 12-34 56-78 ", "12345678"),
        ("1234\u00a05678", "12345678"),  # a non-breaking space pasted from a web page
        ("12\t34\n56", "123456"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_account(raw: str | None, expected: str) -> None:
    assert normalize_account(raw) == expected


@pytest.mark.parametrize(
    ("raw", "valid"),
    [
        ("1234", True),  # 4 digits: the shortest
        ("123", False),
        ("1" * 20, True),  # 20 digits: the longest
        ("1" * 21, False),
        ("0000", True),
        ("12 34", True),  # spaces are not part of the number
        ("12-34-56", True),
        ("abcd", False),
        ("1234a", False),
        ("١٢٣٤", False),  # Arabic-Indic digits are not [0-9]
        ("", False),
        ("   ", False),
        ("1234\n", True),  # a trailing newline is whitespace, stripped
    ],
)
def test_account_against_the_default_pattern(raw: str, valid: bool) -> None:
    assert is_valid_account(normalize_account(raw), DEFAULT_PATTERN) is valid


def test_the_pattern_must_match_the_whole_number() -> None:
    loose = re.compile(r"[0-9]{4}")  # no anchors: still a full match is required
    assert is_valid_account("1234", loose)
    assert not is_valid_account("12345", loose)
    assert not is_valid_account("x1234", loose)


def test_a_custom_pattern() -> None:
    pattern = re.compile(r"^EC[0-9]{6}$")
    assert is_valid_account(normalize_account("EC 123-456"), pattern)
    assert not is_valid_account(normalize_account("123456"), pattern)


def test_an_empty_account_is_never_valid_even_if_the_pattern_allows_it() -> None:
    assert not is_valid_account("", re.compile(r"^[0-9]*$"))


@given(st.from_regex(r"[0-9]{4,20}", fullmatch=True), st.lists(st.sampled_from([" ", "-"])))
def test_separators_anywhere_do_not_change_a_valid_number(digits: str, seps: list[str]) -> None:
    spaced = "".join(d + (seps[i] if i < len(seps) else "") for i, d in enumerate(digits))
    assert normalize_account(spaced) == digits
    assert is_valid_account(normalize_account(spaced), DEFAULT_PATTERN)


@pytest.mark.parametrize(
    ("words", "kind"),
    [
        ("Our site is down since 9:00, nothing works", Kind.PROBLEM),
        ("Сервис недоступен с утра", Kind.PROBLEM),
        ("The payment page fails with error 500", Kind.INCIDENT),
        ("Не могу войти в личный кабинет", Kind.INCIDENT),
        ("Предлагаю добавить экспорт в Excel", Kind.DEVELOPMENT),
        ("A feature request: dark mode would be nice", Kind.DEVELOPMENT),
        ("How do I change my tariff plan?", Kind.SERVICE),
        ("Please add my colleague to our account", Kind.SERVICE),
        ("Добавьте, пожалуйста, второго пользователя", Kind.SERVICE),
        ("", Kind.SERVICE),
    ],
)
def test_a_request_without_the_dialog_gets_the_kind_its_words_say(words: str, kind: Kind) -> None:
    assert guess_kind(words) is kind
