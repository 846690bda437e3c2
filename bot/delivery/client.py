"""The Bot API client's request middlewares. Direct calls (answers inside a dialog) are
retried on 429 and transient errors.

aiogram neither retries nor waits out ``retry_after``; a session middleware is its hook. The
background sender handles its own retries without blocking, so it switches this off.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import AnswerCallbackQuery, GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)


class DeskSession(AiohttpSession):
    """aiogram's session, keeping alive the response models it parametrises.

    aiogram reads every answer through ``Response[method.__returning__]``, a pydantic generic
    model built on first use. pydantic (2.13) caches such models only weakly, so a model no one
    else holds is collected by the next full garbage collection and built again — about 5 ms
    of schema building for one call. The desk allocates enough (ORM rows, updates) to collect
    often: in the relay benchmark this rebuilding was 15 % of the desk's CPU. One strong
    reference per returned type (a few dozen at most: one per Bot API method used) ends it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._response_models: dict[Any, type[Response[Any]]] = {}

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._response_models:
            self._response_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


retrying_enabled: ContextVar[bool] = ContextVar("retrying_enabled", default=True)


class RetryMiddleware(BaseRequestMiddleware):
    # Short: a direct call runs inside an update whose transaction holds the database.
    def __init__(self, attempts: int = 3, max_wait: float = 5.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if not retrying_enabled.get() or isinstance(method, GetUpdates):
            return await make_request(bot, method)
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts or exc.retry_after > self.max_wait:
                    raise
                wait: float = exc.retry_after
            except TelegramEntityTooLarge:
                raise  # a network error to aiogram, but the file stays too large
            except (TelegramServerError, TelegramNetworkError) as exc:
                if attempt == self.attempts:
                    raise
                wait = delay
                delay *= 2
                log.warning("%s failed (%s); retry %d", type(method).__name__, exc, attempt)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


class StaleCallbackAnswers(BaseRequestMiddleware):
    """The answer to a button press that is too old to answer has nothing left to do: the
    spinner stopped long ago. It happens when an update is handled again: the next attempt
    after a failed one (the first may have answered already), or a replay of a failed update
    hours later (``bot/failures.py``). Such an answer must not fail the update."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as exc:
            if not isinstance(method, AnswerCallbackQuery) or "query is too old" not in str(exc):
                raise
            log.info("a button press answered too late; nothing to do (%s)", exc.message)
            return Response[TelegramType](ok=True, result=True)
