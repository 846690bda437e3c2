"""Validation rules of the customer's request dialog (SPEC §4)."""

from __future__ import annotations

import re
from enum import StrEnum

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
