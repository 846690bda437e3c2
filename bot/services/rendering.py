"""Services say what to tell whom as data; the edges render it.

A service that puts a message in the outbox describes it as a notice (a frozen dataclass of
plain values: numbers, names, the customer's words) and asks the :class:`Renderer` it was given
for the text and buttons in the addressee's language. The renderer is implemented at the edge
(``bot/views/render.py``, with ``bot/views`` and ``bot/keyboards``) and wired in
``bot/app.py``: services never import views or keyboards, and the same notice can be rendered
for another transport (e-mail) without touching the use case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    # An InlineKeyboardMarkup as the JSON the outbox keeps (``model_dump(mode="json")``).
    reply_markup: dict[str, Any] | None = None


class Renderer(Protocol):
    def __call__(self, notice: object, locale: str) -> Rendered: ...
