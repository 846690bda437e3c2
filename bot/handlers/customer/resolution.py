"""The customer's side of the resolution: Solved / Not solved (with a reason), closing a
request that is no longer needed, and the rating with an optional comment."""

from __future__ import annotations

import contextlib

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.handlers.customer.dialog import Dialog
from bot.handlers.routing import DeskRouter
from bot.keyboards import customer as kb
from bot.keyboards.customer import CloseMineCb, ConfirmCb, RateCb
from bot.services.lifecycle import Refusal
from bot.services.resolution import ResolutionService
from bot.states import Feedback
from bot.views import resolution as views
from bot.views.labels import refusal_text

IN_FEEDBACK = StateFilter(Feedback.dispute_reason, Feedback.close_reason, Feedback.rating_comment)


async def _drop_keyboard(callback: CallbackQuery) -> None:
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)


async def cancel_feedback(message: Message, dialog: Dialog) -> None:
    await dialog.state.clear()
    await dialog.messenger.send(dialog.session, dialog.user.id, _("OK, nothing was changed."))


async def solved(
    callback: CallbackQuery, callback_data: ConfirmCb, dialog: Dialog, resolution: ResolutionService
) -> None:
    try:
        await resolution.confirm(dialog.session, dialog.user, callback_data.number)
    except Refusal as refusal:
        await callback.answer(refusal_text(refusal), show_alert=True)
        return
    await callback.answer(_("Thank you!"))
    await _drop_keyboard(callback)


async def not_solved(
    callback: CallbackQuery, callback_data: ConfirmCb, dialog: Dialog, resolution: ResolutionService
) -> None:
    try:
        await resolution.check_can_dispute(dialog.session, dialog.user, callback_data.number)
    except Refusal as refusal:
        await callback.answer(refusal_text(refusal), show_alert=True)
        return
    await callback.answer()
    await dialog.state.set_state(Feedback.dispute_reason)
    await dialog.state.update_data(ticket=callback_data.number)
    text = views.ask_dispute_reason(callback_data.number)
    await dialog.messenger.send(dialog.session, dialog.user.id, text)


async def dispute_reason(message: Message, dialog: Dialog, resolution: ResolutionService) -> None:
    number = int((await dialog.state.get_data())["ticket"])
    await dialog.state.set_state(None)
    try:
        await resolution.dispute(dialog.session, dialog.user, number, message.text or "")
    except Refusal as refusal:
        await dialog.messenger.send(dialog.session, dialog.user.id, refusal_text(refusal))


async def close_mine(
    callback: CallbackQuery,
    callback_data: CloseMineCb,
    dialog: Dialog,
    resolution: ResolutionService,
) -> None:
    try:
        await resolution.check_can_close(dialog.session, dialog.user, callback_data.number)
    except Refusal as refusal:
        await callback.answer(refusal_text(refusal), show_alert=True)
        return
    await callback.answer()
    await dialog.state.set_state(Feedback.close_reason)
    await dialog.state.update_data(ticket=callback_data.number)
    text = views.ask_close_reason(callback_data.number)
    await dialog.messenger.send(dialog.session, dialog.user.id, text)


async def close_reason(message: Message, dialog: Dialog, resolution: ResolutionService) -> None:
    number = int((await dialog.state.get_data())["ticket"])
    await dialog.state.set_state(None)
    try:
        await resolution.close_by_customer(dialog.session, dialog.user, number, message.text or "")
    except Refusal as refusal:
        await dialog.messenger.send(dialog.session, dialog.user.id, refusal_text(refusal))


async def rated(
    callback: CallbackQuery, callback_data: RateCb, dialog: Dialog, resolution: ResolutionService
) -> None:
    try:
        await resolution.rate(
            dialog.session, dialog.user, callback_data.number, callback_data.score
        )
    except Refusal as refusal:
        await callback.answer(refusal_text(refusal), show_alert=True)
        return
    await callback.answer("⭐" * callback_data.score)
    await _drop_keyboard(callback)
    await dialog.state.set_state(Feedback.rating_comment)
    await dialog.state.update_data(ticket=callback_data.number)
    await dialog.messenger.send(
        dialog.session, dialog.user.id, views.ask_comment(), kb.skip_comment(callback_data.number)
    )


async def no_comment(callback: CallbackQuery, dialog: Dialog) -> None:
    await callback.answer()
    await _drop_keyboard(callback)
    if await dialog.state.get_state() == Feedback.rating_comment.state:
        await dialog.state.set_state(None)
        await dialog.messenger.send(dialog.session, dialog.user.id, views.thanks_for_rating())


async def rating_comment(message: Message, dialog: Dialog, resolution: ResolutionService) -> None:
    number = int((await dialog.state.get_data())["ticket"])
    await dialog.state.set_state(None)
    with contextlib.suppress(Refusal):
        await resolution.comment(dialog.session, dialog.user, number, message.text or "")
    await dialog.messenger.send(dialog.session, dialog.user.id, views.thanks_for_rating())


async def not_text(message: Message, dialog: Dialog) -> None:
    await dialog.messenger.send(
        dialog.session,
        dialog.user.id,
        _("⚠️ Please write it as text (or /cancel)."),
    )


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    # Every message handler here answers a question of the resolution: one check for the
    # messages that answer none (most of them), not one per handler.
    router.message.filter(IN_FEEDBACK)
    router.message.register(cancel_feedback, IN_FEEDBACK, Command("cancel"))
    router.callback_query.register(solved, ConfirmCb.filter(F.solved))
    router.callback_query.register(not_solved, ConfirmCb.filter(~F.solved))
    router.message.register(dispute_reason, StateFilter(Feedback.dispute_reason), F.text)
    router.callback_query.register(close_mine, CloseMineCb.filter())
    router.message.register(close_reason, StateFilter(Feedback.close_reason), F.text)
    router.callback_query.register(rated, RateCb.filter(F.score > 0))
    router.callback_query.register(no_comment, RateCb.filter(F.score == 0))
    router.message.register(rating_comment, StateFilter(Feedback.rating_comment), F.text)
    router.message.register(not_text, IN_FEEDBACK)
    return router
