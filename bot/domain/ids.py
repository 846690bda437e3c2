"""Numbers that come from people — command arguments, callback data (which any client can
forge) — are checked before they reach the database, which keeps integers in 64 bits: a
20-digit number would fail there as an OverflowError instead of being refused."""

from __future__ import annotations

MAX_ID = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's BIGINT


def parse_id(text: str) -> int | None:
    """A positive number in ASCII digits within the database's range; otherwise None
    (``str.isdigit`` alone lets "²" through, which ``int`` refuses)."""
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
