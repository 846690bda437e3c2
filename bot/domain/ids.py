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


# Customers who write by e-mail (SPEC §10) are people of the desk like Telegram users, with ids
# of their own above every Telegram id: Telegram's user ids have at most 52 significant bits,
# so everything from 2**53 up is free. Below MAX_ID, so the database keeps them as any other.
MAIL_CUSTOMER_BASE = 2**53


def is_mail_customer(user_id: int) -> bool:
    """Whether the person (a ticket's customer, a delivery's chat) is reached by e-mail."""
    return user_id >= MAIL_CUSTOMER_BASE
