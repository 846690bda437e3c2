"""Who may act in the staff group, and how a button press is answered.

Only updates from the staff group reach the staff routers, and a button, a message or an edit
acts only when its author is a member of the group (callback data can be forged; who pressed and
where cannot). Every press is answered once, in one place (:class:`AnswerPresses`): handlers say
what the answer is (``callback_answer.text``, ``.show_alert``), not when to send it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.dispatcher.flags import get_flag
from aiogram.filters import BaseFilter
from aiogram.types import CallbackQuery, Chat, ChatMemberUpdated, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware

from bot.services.desk_config import DeskConfig
from bot.services.membership import Membership
from bot.views import staff as views

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

ANSWER_LIMIT = 200  # UTF-16 code units of a press's answer (a toast or an alert)


def fit_answer(text: str, limit: int = ANSWER_LIMIT) -> str:
    """``text`` cut to what Telegram takes as a press's answer (a longer one is refused with
    400 MESSAGE_TOO_LONG and the press would fail). Telegram counts UTF-16 code units: an
    emoji is two of them."""
    units = text.encode("utf-16-le")
    if len(units) <= 2 * limit:
        return text
    # Cut on a code unit boundary, then drop half a surrogate pair if the cut split one.
    kept = units[: 2 * (limit - 1)].decode("utf-16-le", errors="ignore")
    return kept.rstrip() + "…"


class InStaffChat(BaseFilter):
    async def __call__(
        self, event: Message | CallbackQuery | ChatMemberUpdated, desk: DeskConfig
    ) -> bool:
        chat: Chat | None = (
            event.chat
            if isinstance(event, Message | ChatMemberUpdated)
            else getattr(event.message, "chat", None)
        )
        return chat is not None and chat.id == desk.staff_chat_id


class AnswerPresses(CallbackAnswerMiddleware):
    """aiogram's answer middleware, except that it answers only once the handler has returned:
    a press whose handling failed is answered by the error path (``bot/failures.py``) with its
    alert, and an attempt that is tried again answers once, when it gets through."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        answer = self.construct_callback_answer(properties=get_flag(data, "callback_answer"))
        data["callback_answer"] = answer
        result = await handler(event, data)
        if not answer.disabled and not answer.answered:
            if answer.text is not None:
                answer.text = fit_answer(answer.text)
            await self.answer(event, answer)
        return result


async def members_only(handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
    if isinstance(event, Message) and event.migrate_to_chat_id:
        # Telegram's own service message (no client can send one): the group has a new id.
        return await handler(event, data)
    membership: Membership = data["membership"]
    user = data.get("user")
    if user is None or not await membership.is_member(user.id, data["session"]):
        if isinstance(event, CallbackQuery):
            # Someone removed from the group: for them the button is no longer active.
            answer: CallbackAnswer = data["callback_answer"]
            answer.text, answer.show_alert = views.stale_button(), True
        membership.log_refused(event, user.id if user else None)
        return None
    membership.seen(user, data["session"])
    return await handler(event, data)
