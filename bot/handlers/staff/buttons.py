"""The card's buttons, one handler per action. Each press names a ticket in its callback data,
which a client can forge: :class:`OnItsCard` lets a press through only on that ticket's own
message. A refusal is answered as an alert, and the card is drawn again as it is now."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiogram import F, Router
from aiogram.filters import BaseFilter
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.domain.tickets import Priority
from bot.handlers.routing import DeskRouter
from bot.handlers.staff.gate import Handler
from bot.keyboards import problems as problem_kb
from bot.keyboards import staff as kb
from bot.keyboards.staff import Op, StaffCb
from bot.services.cards import display_name
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.membership import Membership
from bot.services.problems import ProblemService
from bot.services.rendering import Renderer
from bot.services.resolution import ResolutionService
from bot.services.staff.actions import StaffActions
from bot.services.staff.lookup import StaffLookup
from bot.views import staff as views
from bot.views.labels import refusal_text

log = logging.getLogger(__name__)


class OnItsCard(BaseFilter):
    """The ticket a press names is the ticket of the message pressed."""

    async def __call__(
        self,
        callback: CallbackQuery,
        callback_data: StaffCb,
        session: AsyncSession,
        staff_lookup: StaffLookup,
    ) -> bool:
        if not isinstance(callback.message, Message):
            return False
        ticket = await staff_lookup.ticket_of_staff_message(session, callback.message.message_id)
        if ticket is None and genuine_button(callback):
            # A card pressed the moment it appeared, before the sender has recorded it.
            return True
        if ticket is None or ticket.number != callback_data.number:
            log.warning(
                "forged or misplaced staff button: %r on message %s by %s",
                callback.data,
                callback.message.message_id,
                callback.from_user.id,
            )
            return False
        return True


def genuine_button(callback: CallbackQuery) -> bool:
    """The pressed message comes from Telegram's servers as it is, so a client can forge the
    data but not the message: data equal to one of the buttons of our own message is real."""
    message = callback.message
    if not isinstance(message, Message) or message.reply_markup is None:
        return False
    ours = callback.bot.id if callback.bot is not None else None
    if message.from_user is None or message.from_user.id != ours:
        return False
    return any(
        button.callback_data == callback.data
        for row in message.reply_markup.inline_keyboard
        for button in row
    )


async def refusals_as_alerts(handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
    try:
        return await handler(event, data)
    except Refusal as refusal:
        answer: CallbackAnswer = data["callback_answer"]
        answer.text, answer.show_alert = refusal_text(refusal), True
        # The card on screen may be out of date (someone else acted): show it as it is.
        actions: StaffActions = data["staff_actions"]
        callback_data: StaffCb = data["callback_data"]
        with contextlib.suppress(Refusal):
            await actions.refresh_card(data["session"], callback_data.number)
        return None


async def _show(
    callback: CallbackQuery,
    number: int,
    markup: InlineKeyboardMarkup,
    session: AsyncSession,
    staff_actions: StaffActions,
) -> None:
    if isinstance(callback.message, Message):
        await staff_actions.show_menu(
            session,
            number,
            callback.message.message_id,
            markup.model_dump(mode="json", exclude_none=True),
        )


# -- actions ------------------------------------------------------------------------------------


async def take(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_actions: StaffActions,
    callback_answer: CallbackAnswer,
) -> None:
    await staff_actions.take(session, callback_data.number, user)
    callback_answer.text = views.taken(callback_data.number)


async def assign(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_actions: StaffActions,
    membership: Membership,
    callback_answer: CallbackAnswer,
) -> None:
    # The id comes from the client: only someone who is staff can be assigned.
    if not await membership.is_member(callback_data.arg, session):
        raise Refusal(views.not_staff())
    assignee = await staff_actions.assign(session, callback_data.number, user, callback_data.arg)
    callback_answer.text = views.assigned(callback_data.number, display_name(assignee))


async def set_priority(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_actions: StaffActions,
    callback_answer: CallbackAnswer,
) -> None:
    if callback_data.arg not in {int(p) for p in Priority}:
        raise Refusal(views.stale_button())
    priority = Priority(callback_data.arg)
    await staff_actions.set_priority(session, callback_data.number, user, priority)
    callback_answer.text = views.priority_set(callback_data.number, priority)


async def set_line(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_actions: StaffActions,
    callback_answer: CallbackAnswer,
) -> None:
    await staff_actions.set_line(session, callback_data.number, user, callback_data.arg)
    callback_answer.text = views.line_set(callback_data.number, callback_data.arg)


async def ask_info(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_actions: StaffActions,
    desk: DeskConfig,
    callback_answer: CallbackAnswer,
) -> None:
    await staff_actions.ask_info(session, callback_data.number, user)
    callback_answer.text = views.info_asked(callback_data.number, forum=desk.staff_is_forum)


async def resolve(
    callback: CallbackQuery,
    callback_data: StaffCb,
    session: AsyncSession,
    staff_actions: StaffActions,
    locale: str,
    callback_answer: CallbackAnswer,
) -> None:
    await staff_actions.resolve_prompt(session, callback_data.number, locale)
    callback_answer.text = views.write_the_answer()


async def resolve_with_last(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    resolution: ResolutionService,
    problems: ProblemService,
    locale: str,
    callback_answer: CallbackAnswer,
) -> None:
    ticket = await staff_lookup.ticket(session, callback_data.number, lock=True)
    await resolution.resolve(session, ticket, user, None)
    await problems.offer_resolve_all(session, ticket, None, None, locale)
    callback_answer.text = views.resolved(callback_data.number)


async def close(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_actions: StaffActions,
    callback_answer: CallbackAnswer,
) -> None:
    await staff_actions.close(session, callback_data.number, user)
    callback_answer.text = views.closed(callback_data.number)


async def history(
    callback: CallbackQuery,
    callback_data: StaffCb,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_actions: StaffActions,
    locale: str,
) -> None:
    found = await staff_lookup.history(session, callback_data.number)
    await staff_actions.post_to_ticket(session, callback_data.number, views.history(found, locale))


# -- menus --------------------------------------------------------------------------------------


async def assign_menu(
    callback: CallbackQuery,
    callback_data: StaffCb,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_actions: StaffActions,
    membership: Membership,
) -> None:
    people = {u.id: display_name(u) for u in await staff_lookup.known_staff(session)}
    people.update(dict(await membership.admins()))
    choices = sorted(people.items(), key=lambda p: p[1])
    number = callback_data.number
    await _show(callback, number, kb.assignees(number, choices), session, staff_actions)


async def priority_menu(
    callback: CallbackQuery,
    callback_data: StaffCb,
    session: AsyncSession,
    staff_actions: StaffActions,
) -> None:
    number = callback_data.number
    await _show(callback, number, kb.priorities(number), session, staff_actions)


async def line_menu(
    callback: CallbackQuery,
    callback_data: StaffCb,
    session: AsyncSession,
    staff_actions: StaffActions,
) -> None:
    number = callback_data.number
    await _show(callback, number, kb.lines(number), session, staff_actions)


async def back(
    callback: CallbackQuery,
    callback_data: StaffCb,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_actions: StaffActions,
) -> None:
    number = callback_data.number
    ticket = await staff_lookup.ticket(session, number)
    await _show(callback, number, kb.card(number, ticket.status), session, staff_actions)


async def link_menu(
    callback: CallbackQuery,
    callback_data: StaffCb,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_actions: StaffActions,
    problems: ProblemService,
    callback_answer: CallbackAnswer,
) -> None:
    number = callback_data.number
    ticket = await staff_lookup.ticket(session, number)
    choices = await problems.candidates(session, number)
    markup = problem_kb.link_menu(number, choices, ticket.problem_number)
    await _show(callback, number, markup, session, staff_actions)
    callback_answer.text = views.link_hint(number)


async def link(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_actions: StaffActions,
    problems: ProblemService,
    render: Renderer,
    locale: str,
    callback_answer: CallbackAnswer,
) -> None:
    number = callback_data.number
    report = await problems.link(session, callback_data.arg, [number], user)
    callback_answer.text = render(report, locale).text
    callback_answer.show_alert = not report.changed
    await back(callback, callback_data, session, staff_lookup, staff_actions)


async def unlink(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_actions: StaffActions,
    problems: ProblemService,
    render: Renderer,
    locale: str,
    callback_answer: CallbackAnswer,
) -> None:
    done = await problems.unlink(session, [callback_data.number], user)
    callback_answer.text = render(done, locale).text
    await back(callback, callback_data, session, staff_lookup, staff_actions)


async def stale_button(callback: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    log.warning("unknown button data %r from %s", callback.data, callback.from_user.id)
    callback_answer.text, callback_answer.show_alert = views.stale_button(), True


def create_router() -> Router:
    card = DeskRouter(name=f"{__name__}.card")
    card.callback_query.filter(StaffCb.filter(), OnItsCard())
    card.callback_query.middleware(refusals_as_alerts)
    for op, handler in (
        (Op.TAKE, take),
        (Op.ASSIGN_MENU, assign_menu),
        (Op.ASSIGN, assign),
        (Op.PRIORITY_MENU, priority_menu),
        (Op.PRIORITY, set_priority),
        (Op.LINE_MENU, line_menu),
        (Op.LINE, set_line),
        (Op.ASK_INFO, ask_info),
        (Op.RESOLVE, resolve),
        (Op.RESOLVE_LAST, resolve_with_last),
        (Op.CLOSE, close),
        (Op.HISTORY, history),
        (Op.BACK, back),
        (Op.LINK_MENU, link_menu),
        (Op.LINK, link),
        (Op.UNLINK, unlink),
    ):
        card.callback_query.register(handler, StaffCb.filter(F.op == op))
    # Whatever no handler took (a forged press, a button of an older version): after the card's
    # buttons and the commands' (which the staff router includes first).
    stale = DeskRouter(name=f"{__name__}.stale")
    stale.callback_query.register(stale_button, F.data)
    router = DeskRouter(name=__name__)
    router.include_routers(card, stale)
    return router
