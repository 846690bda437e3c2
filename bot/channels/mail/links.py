"""Signed links: the Solved / Not solved and rating buttons of a mail (SPEC §10).

A link names the ticket, the action and the round of the resolution it belongs to (how many
times the ticket was reopened before), and carries an HMAC of the three: it cannot be made for
another ticket, nor changed into another action, and a link from an earlier resolution does
nothing to a later one. Once used, the ticket has moved on (closed, reopened, rated), so the
same link only shows what became of it: single use without a table of used links.

The key is derived from the bot's token, which every instance has and nobody else does.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

SOLVED, NOT_SOLVED = "solved", "not-solved"
RATE = "rate-"  # + the score, 1..5


@dataclass(frozen=True, slots=True)
class LinkAction:
    number: int
    action: str  # SOLVED, NOT_SOLVED or RATE + score
    round: int

    @property
    def score(self) -> int | None:
        return int(self.action.removeprefix(RATE)) if self.action.startswith(RATE) else None


class MailLinks:
    def __init__(self, *, secret: str, public_url: str) -> None:
        self._key = hashlib.sha256(b"ecomet-mail-links:" + secret.encode()).digest()
        self.public_url = public_url.rstrip("/")

    def signature(self, number: int, action: str, round_: int) -> str:
        message = f"{number}:{action}:{round_}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def url(self, number: int, action: str, round_: int) -> str:
        query = urlencode({"r": round_, "s": self.signature(number, action, round_)})
        return f"{self.public_url}/mail/{number}/{action}?{query}"

    def for_button(self, number: int, round_: int, callback_data: str) -> str | None:
        """The link of a customer's button about ticket ``number`` in its resolution round
        ``round_`` (``ok:N:1``, ``ok:N:0``, ``rate:N:S``); other buttons have no page and are
        left out of the mail."""
        prefix, _, rest = callback_data.partition(":")
        number_text, _, value = rest.partition(":")
        if not number_text.isdigit() or int(number_text) != number:
            return None
        if prefix == "ok" and value in ("1", "0"):
            action = SOLVED if value == "1" else NOT_SOLVED
        elif prefix == "rate" and value in ("1", "2", "3", "4", "5"):
            action = RATE + value
        else:
            return None
        return self.url(number, action, round_)

    def check(self, number: int, action: str, round_text: str, signature: str) -> LinkAction | None:
        """The link's action if its signature is right; None for a forged or broken link."""
        valid = action in (SOLVED, NOT_SOLVED) or (
            action.startswith(RATE) and action.removeprefix(RATE) in ("1", "2", "3", "4", "5")
        )
        if not valid or not round_text.isdigit() or len(round_text) > 6:
            return None
        round_ = int(round_text)
        if not hmac.compare_digest(self.signature(number, action, round_), signature):
            return None
        return LinkAction(number, action, round_)
