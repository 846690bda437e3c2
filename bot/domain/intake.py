"""Validation rules of the customer's request dialog (SPEC §4)."""

from __future__ import annotations

import re
from enum import StrEnum

from bot.domain.tickets import Kind

TOPIC_MIN, TOPIC_MAX = 3, 100
DESCRIPTION_MIN, DESCRIPTION_MAX = 10, 4000


class TextProblem(StrEnum):
    EMPTY = "empty"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"


def normalize_text(text: str | None) -> str:
    """Trim the text and squeeze runs of blank lines; ``None`` becomes empty."""
    if not text:
        return ""
    return re.sub(r"\n{3,}", "\n\n", text.strip())


def check_length(text: str, minimum: int, maximum: int) -> TextProblem | None:
    if not text:
        return TextProblem.EMPTY
    if len(text) < minimum:
        return TextProblem.TOO_SHORT
    if len(text) > maximum:
        return TextProblem.TOO_LONG
    return None


def check_topic(text: str) -> TextProblem | None:
    return check_length(text, TOPIC_MIN, TOPIC_MAX)


def check_description(text: str) -> TextProblem | None:
    return check_length(text, DESCRIPTION_MIN, DESCRIPTION_MAX)


def normalize_account(text: str | None) -> str:
    """Customers paste numbers with spaces or dashes; those are not part of the number."""
    return re.sub(r"[\s\-]", "", text or "")


def is_valid_account(text: str, pattern: re.Pattern[str]) -> bool:
    return bool(text) and pattern.fullmatch(text) is not None


# A request that arrives without the dialog (an e-mail) has no kind chosen by the customer:
# SPEC §10 makes it a service request "unless the customer's words say otherwise". The words
# below are what customers write when they mean the other kinds; staff change a wrong guess
# with one press, so the rules stay few and plain rather than clever.
_KIND_WORDS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    (
        Kind.PROBLEM,
        re.compile(
            r"\b(?:не\s+работает\s+(?:вообще|совсем|ничего)|ничего\s+не\s+работает"
            r"|сервис\s+(?:недоступен|упал|лежит)|всё\s+упало|все\s+упало"
            r"|(?:service|site|app)\s+is\s+down|(?:is|are)\s+completely\s+down|outage"
            r"|nothing\s+works|cannot\s+use\s+(?:the\s+)?service\s+at\s+all)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Kind.INCIDENT,
        re.compile(
            r"\b(?:не\s+работает|не\s+открывается|не\s+загружается|ошибк[аиуе]|сбой|глючит"
            r"|не\s+могу\s+(?:войти|зайти|оплатить)|error|does\s*n[o']t\s+work"
            r"|is\s+not\s+working|broken|fails?|crash(?:es|ed)?|cannot\s+log\s*in"
            r"|can'?t\s+log\s*in)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Kind.DEVELOPMENT,
        re.compile(
            # Not "please add" / "добавьте": "add my colleague to the account" is a question.
            r"\b(?:предлагаю|хотелось\s+бы|было\s+бы\s+(?:удобно|здорово|хорошо)"
            r"|новую\s+функци|feature\s+request|would\s+be\s+(?:nice|great)"
            r"|it\s+would\s+help\s+if|suggestion)",
            re.IGNORECASE,
        ),
    ),
)


def guess_kind(text: str) -> Kind:
    """The kind a request's words suggest: the first of problem, incident, development whose
    words appear, else a service request (a question)."""
    for kind, words in _KIND_WORDS:
        if words.search(text):
            return kind
    return Kind.SERVICE
