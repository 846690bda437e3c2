"""The edge that renders services' notices (``bot/services/rendering.py``) into Telegram text
and buttons, in the addressee's language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiogram.utils.i18n import I18n

from bot.services.rendering import Rendered

RenderFn = Callable[[Any, str], Rendered]  # (notice, locale) -> text and buttons


class ViewRenderer:
    """One table from notice type to its view; each audience's views contribute theirs."""

    def __init__(self, i18n: I18n, *tables: Mapping[type, RenderFn]) -> None:
        self.i18n = i18n
        self._table: dict[type, RenderFn] = {}
        for table in tables:
            self._table.update(table)

    def __call__(self, notice: object, locale: str) -> Rendered:
        view = self._table.get(type(notice))
        if view is None:
            raise LookupError(f"no view renders {type(notice).__name__}")
        with self.i18n.context(), self.i18n.use_locale(locale):
            return view(notice, locale)
