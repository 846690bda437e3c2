"""The desk's routers: aiogram's, minus a cost every update pays at every level it passes.

Written by hand because aiogram has no switch for it: ``Router.propagate_event`` wraps the
observer's outer middlewares around the rest of the propagation at every router an update
passes (a ``functools.wraps`` and a ``partial`` per middleware, a closure, a ``**kwargs`` copy
more), whether the router has outer middlewares or not. A customer's follow-up passes eight
routers, none of them with one; going straight on where there are none is the same
propagation in the same order with the same data — measured with
``benchmarks/intake_batch.py --preset many``: 1,790 → 1,600 Python calls per update.
"""

from __future__ import annotations

from typing import Any

from aiogram import Dispatcher, Router
from aiogram.types import TelegramObject


class _DirectPropagation(Router):
    async def propagate_event(self, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        observer = self.observers.get(update_type)
        if observer is not None and len(observer.outer_middleware):
            return await super().propagate_event(update_type, event, **kwargs)
        kwargs["event_router"] = self
        return await self._propagate_event(
            observer=observer, update_type=update_type, event=event, **kwargs
        )


class DeskRouter(_DirectPropagation):
    """A router of the desk (``Router`` in all but the cost of passing it)."""


class DeskDispatcher(_DirectPropagation, Dispatcher):
    """The desk's dispatcher: its update-level outer middlewares run as aiogram runs them;
    the event level below them (``message``, ``callback_query``…) has none and goes straight on."""
