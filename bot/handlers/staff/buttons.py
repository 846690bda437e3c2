"""The card's buttons. Each press names a ticket in its callback data, which a client can
forge: the ticket must be the one the pressed message belongs to."""

from __future__ import annotations

import contextlib
import logging

from aiogram import F, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.domain.tickets import Priority
from bot.keyboards import staff as kb
from bot.keyboards.staff import Op, StaffCb
from bot.services.cards import display_name
from bot.services.lifecycle import Refusal
from bot.services.membership import Membership
from bot.services.resolution import ResolutionService
from bot.services.staff import Done, StaffService

log = logging.getLogger(__name__)
router = Router(name=__name__)


async def _belongs(
    callback: CallbackQuery, number: int, session: AsyncSession, staff: StaffService
) -> bool:
    if not isinstance(callback.message, Message):
        return False
    ticket = await staff.ticket_of_staff_message(session, callback.message.message_id)
    if ticket is None and _genuine_button(callback):
        # A card pressed the moment it appeared, before the sender has recorded it.
        return True
    if ticket is None or ticket.number != number:
        log.warning(
            "forged or misplaced staff button: %r on message %s by %s",
            callback.data,
            callback.message.message_id,
            callback.from_user.id,
        )
        return False
    return True


def _genuine_button(callback: CallbackQuery) -> bool:
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


async def _show(
    callback: CallbackQuery,
    number: int,
    markup: InlineKeyboardMarkup,
    session: AsyncSession,
    staff: StaffService,
) -> None:
    """Through the outbox, in the ticket's stream: after any card edit already on its way."""
    if isinstance(callback.message, Message):
        await staff.show_keyboard(session, number, callback.message.message_id, markup)


@router.callback_query(StaffCb.filter())
async def card_button(
    callback: CallbackQuery,
    callback_data: StaffCb,
    user: User,
    session: AsyncSession,
    staff: StaffService,
    membership: Membership,
    resolution: ResolutionService,
    locale: str,
) -> None:
    number, op = callback_data.number, callback_data.op
    if not await _belongs(callback, number, session, staff):
        await callback.answer(_stale(), show_alert=True)
        return
    try:
        if op is Op.ASSIGN_MENU:
            people = {u.id: display_name(u) for u in await staff.known_staff(session)}
            people.update(dict(await membership.admins()))
            await callback.answer()
            choices = sorted(people.items(), key=lambda p: p[1])
            await _show(callback, number, kb.assignees(number, choices), session, staff)
            return
        if op is Op.PRIORITY_MENU:
            await callback.answer()
            await _show(callback, number, kb.priorities(number), session, staff)
            return
        if op is Op.LINE_MENU:
            await callback.answer()
            await _show(callback, number, kb.lines(number), session, staff)
            return
        if op is Op.BACK:
            ticket = await staff.ticket(session, number)
            await callback.answer()
            await _show(callback, number, kb.card(number, ticket.status), session, staff)
            return
        if op is Op.HISTORY:
            text = await staff.history(session, number, locale)
            await callback.answer()
            await staff.post_to_ticket(session, number, text)
            return
        done = await _act(op, callback_data, user, session, staff, membership, resolution)
    except Refusal as refusal:
        await callback.answer(str(refusal), show_alert=True)
        # The card on screen may be out of date (someone else acted): show it as it is.
        with contextlib.suppress(Refusal):
            await staff.cards.refresh(session, await staff.ticket(session, number))
        return
    await callback.answer(done.message)


async def _act(
    op: Op,
    data: StaffCb,
    user: User,
    session: AsyncSession,
    staff: StaffService,
    membership: Membership,
    resolution: ResolutionService,
) -> Done:
    number = data.number
    if op is Op.TAKE:
        return await staff.take(session, number, user)
    if op is Op.ASSIGN:
        # The id comes from the client: only someone who is staff can be assigned.
        if not await membership.is_member(data.arg, session):
            raise Refusal(_not_staff())
        return await staff.assign(session, number, user, data.arg)
    if op is Op.PRIORITY:
        if data.arg not in {int(p) for p in Priority}:
            raise Refusal(_stale())
        return await staff.set_priority(session, number, user, Priority(data.arg))
    if op is Op.LINE:
        return await staff.set_line(session, number, user, data.arg)
    if op is Op.ASK_INFO:
        return await staff.ask_info(session, number, user)
    if op is Op.RESOLVE:
        return await staff.resolve_prompt(session, number, user)
    if op is Op.RESOLVE_LAST:
        ticket = await staff.ticket(session, number, lock=True)
        await resolution.resolve(session, ticket, user, None)
        return Done(ticket, _("#{number} is resolved.").format(number=number))
    if op is Op.CLOSE:
        return await staff.close(session, number, user)
    raise Refusal(_stale())


def _stale() -> str:
    return _("This button is no longer active.")


def _not_staff() -> str:
    return _("Only members of the staff group can be assigned.")


@router.callback_query(F.data)
async def unknown_staff_button(callback: CallbackQuery) -> None:
    log.warning("unknown button data %r from %s", callback.data, callback.from_user.id)
    await callback.answer(_stale(), show_alert=True)
