"""Problems and their incidents in the staff group (SPEC §13): ``/link``, ``/unlink``,
``/broadcast``, the offers under a problem's answer, and the burst digest's one press.

Callback data can be forged: a press counts only on the bot's own message carrying exactly
that button (Telegram hands over the pressed message as it is), and what it acts on is checked
again against the desk (the offer kept for that problem and answer, the requests the digest
names)."""

from __future__ import annotations

import re
from typing import Any

from aiogram import F, Router, html
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.domain.problems import NumbersError, parse_numbers
from bot.handlers.routing import DeskRouter
from bot.handlers.staff.buttons import genuine_button
from bot.handlers.staff.conversation import mail_content, ticket_of
from bot.handlers.staff.gate import Handler
from bot.keyboards.problems import BurstCb, ProblemCb, ProblemOp
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.messaging import Messenger
from bot.services.problems import ProblemService
from bot.services.rendering import Renderer
from bot.services.staff.lookup import StaffLookup
from bot.services.staff.relay import NOTE
from bot.views.labels import refusal_text

# A new request's line in a burst digest (bot/views/desk.py): ``🆕 /ticket_12 · …``.
DIGEST_NEW = re.compile(r"^🆕 /ticket_(\d{1,18})\b", re.MULTILINE)


async def _answer(message: Message, session: AsyncSession, messenger: Messenger, text: str) -> None:
    """A word to the writer, where they wrote (their topic too), as a reply."""
    await messenger.send(
        session,
        message.chat.id,
        text,
        reply_to_message_id=message.message_id,
        thread_id=message.message_thread_id if message.is_topic_message else None,
    )


def _numbers(text: str) -> list[int]:
    try:
        return parse_numbers(text)
    except NumbersError as error:
        if error.too_many:
            raise Refusal(_("That is too many requests at once.")) from None
        raise Refusal(
            _("“{token}” is not a request number or a range like 35-40."),
            token=html.quote(error.token[:40]),
        ) from None


async def link_command(
    message: Message,
    command: CommandObject,
    user: User,
    session: AsyncSession,
    problems: ProblemService,
    staff_lookup: StaffLookup,
    desk: DeskConfig,
    messenger: Messenger,
    render: Renderer,
    locale: str,
) -> None:
    """``/link 12 34 35-40``: link 34 and 35…40 to the problem 12. ``/link 12`` in a request's
    topic (or replying to its card or messages): link that request to 12."""
    try:
        numbers = _numbers(command.args or "")
        if len(numbers) == 1:
            here = await ticket_of(message, session, staff_lookup, desk)
            numbers = [numbers[0], here.number] if here is not None else []
        if len(numbers) < 2:
            raise Refusal(
                _(
                    "Usage: /link PROBLEM REQUESTS — e.g. /link 12 34 35-40 links #34 and "
                    "#35…#40 to the problem #12; in a request's topic, /link 12 links that request."
                )
            )
        report = await problems.link(session, numbers[0], numbers[1:], user)
        text = render(report, locale).text
    except Refusal as refusal:
        text = refusal_text(refusal)
    await _answer(message, session, messenger, text)


async def unlink_command(
    message: Message,
    command: CommandObject,
    user: User,
    session: AsyncSession,
    problems: ProblemService,
    staff_lookup: StaffLookup,
    desk: DeskConfig,
    messenger: Messenger,
    render: Renderer,
    locale: str,
) -> None:
    """``/unlink 34 35-40``, or ``/unlink`` in a request's topic: no longer an incident."""
    try:
        numbers = _numbers(command.args or "")
        if not numbers:
            here = await ticket_of(message, session, staff_lookup, desk)
            numbers = [here.number] if here is not None else []
        if not numbers:
            raise Refusal(_("Usage: /unlink 34 35-40, or /unlink in a request's topic."))
        text = render(await problems.unlink(session, numbers, user), locale).text
    except Refusal as refusal:
        text = refusal_text(refusal)
    await _answer(message, session, messenger, text)


async def broadcast_command(
    message: Message,
    command: CommandObject,
    user: User,
    session: AsyncSession,
    problems: ProblemService,
    staff_lookup: StaffLookup,
    desk: DeskConfig,
    messenger: Messenger,
    render: Renderer,
    locale: str,
) -> None:
    """In a problem's topic (or replying to its card): ``/broadcast TEXT`` sends the text, and
    ``/broadcast`` in reply to a staff message sends that message, to every linked customer."""
    try:
        problem = await ticket_of(message, session, staff_lookup, desk)
        if problem is None:
            raise Refusal(
                _("Write /broadcast in the problem's topic, or in reply to its card or messages.")
            )
        text = (command.args or "").strip()
        reply = message.reply_to_message
        if text:
            sent = await problems.broadcast(session, problem.number, user, text=html.quote(text))
        elif (
            reply is not None
            and reply.from_user is not None
            and not reply.from_user.is_bot
            and not reply.forum_topic_created
            and reply.message_id != message.message_thread_id
        ):
            kind = await staff_lookup.direction_of(session, reply.message_id)
            if kind == NOTE or (reply.text or reply.caption or "").startswith("!"):
                raise Refusal(_("That is an internal note: notes never leave the staff group."))
            sent = await problems.broadcast(
                session, problem.number, user, reply.message_id, content=mail_content(reply)
            )
        else:
            raise Refusal(
                _("Usage: /broadcast TEXT, or /broadcast in reply to the answer to send to all.")
            )
        text = render(sent, locale).text
    except Refusal as refusal:
        text = refusal_text(refusal)
    await _answer(message, session, messenger, text)


async def tell_all(
    callback: CallbackQuery,
    callback_data: ProblemCb,
    user: User,
    session: AsyncSession,
    problems: ProblemService,
    messenger: Messenger,
    render: Renderer,
    locale: str,
    callback_answer: CallbackAnswer,
) -> None:
    sent = await problems.broadcast(session, callback_data.number, user, callback_data.arg)
    callback_answer.text = render(sent, locale).text
    await _done(callback, session, messenger, callback_answer.text)


async def resolve_all(
    callback: CallbackQuery,
    callback_data: ProblemCb,
    user: User,
    session: AsyncSession,
    problems: ProblemService,
    messenger: Messenger,
    render: Renderer,
    locale: str,
    callback_answer: CallbackAnswer,
) -> None:
    done = await problems.resolve_all(session, callback_data.number, user)
    callback_answer.text = render(done, locale).text
    await _done(callback, session, messenger, callback_answer.text)


async def link_burst(
    callback: CallbackQuery,
    user: User,
    session: AsyncSession,
    problems: ProblemService,
    messenger: Messenger,
    render: Renderer,
    locale: str,
    callback_answer: CallbackAnswer,
) -> None:
    assert isinstance(callback.message, Message)  # genuine: the bot's own digest
    named = [int(n) for n in DIGEST_NEW.findall(callback.message.text or "")]
    report = await problems.link_burst(session, named, user)
    text = render(report, locale).text
    callback_answer.text = _("Linked to problem #{number}.").format(number=report.problem)
    await messenger.send(
        session,
        callback.message.chat.id,
        text,
        reply_to_message_id=callback.message.message_id,
        thread_id=callback.message.message_thread_id if callback.message.is_topic_message else None,
    )


async def _done(
    callback: CallbackQuery, session: AsyncSession, messenger: Messenger, text: str
) -> None:
    """The offer has been taken: it says so instead of offering again."""
    if isinstance(callback.message, Message):
        messenger.edit(
            session, callback.message.chat.id, text, message_id=callback.message.message_id
        )


async def refused(handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
    """A refusal is answered as an alert to the person who pressed."""
    try:
        return await handler(event, data)
    except Refusal as refusal:
        answer: CallbackAnswer = data["callback_answer"]
        answer.text, answer.show_alert = refusal_text(refusal), True
        return None


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.message.register(link_command, Command("link"))
    router.message.register(unlink_command, Command("unlink"))
    router.message.register(broadcast_command, Command("broadcast"))
    presses = DeskRouter(name=f"{__name__}.presses")
    presses.callback_query.filter(F.func(genuine_button))
    presses.callback_query.middleware(refused)
    presses.callback_query.register(tell_all, ProblemCb.filter(F.op == ProblemOp.TELL_ALL))
    presses.callback_query.register(resolve_all, ProblemCb.filter(F.op == ProblemOp.RESOLVE_ALL))
    presses.callback_query.register(link_burst, BurstCb.filter())
    router.include_router(presses)
    return router
