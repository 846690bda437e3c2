"""The guided request dialog (SPEC §4): kind → topic → description → account → screenshots →
summary. Every bad input gets a short explanation and the same question again; the answers
so far live in the dialog state, which is stored in the database."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.domain import intake
from bot.domain.tickets import Kind
from bot.handlers.customer.common import image_of
from bot.keyboards import customer as kb
from bot.keyboards.customer import DialogCb, KindCb, Nav
from bot.services.tickets import AttachmentIn, Draft, TicketService
from bot.states import STEPS, NewRequest
from bot.views.tickets import DraftView, draft_summary

log = logging.getLogger(__name__)
router = Router(name=__name__)


# -- asking -------------------------------------------------------------------------------------


def _draft_view(data: dict[str, Any]) -> DraftView:
    return DraftView(
        kind=Kind(data["kind"]) if data.get("kind") else None,
        topic=data.get("topic"),
        description=data.get("description"),
        account=data.get("account"),
        attachments=len(data.get("attachments") or ()),
    )


def _question(step: str | None, data: dict[str, Any], user: User) -> tuple[str, InlineKeyboardMarkup]:
    if step == NewRequest.kind.state:
        return _("What is your request about? Choose the closest option:"), kb.kinds()
    if step == NewRequest.topic.state:
        return (
            _("In a few words, what is it about? (a short subject, {min}–{max} characters)").format(
                min=intake.TOPIC_MIN, max=intake.TOPIC_MAX
            ),
            kb.back_cancel(),
        )
    if step == NewRequest.description.state:
        return (
            _(
                "Describe it in detail: what you did, what you expected and what happened "
                "({min}–{max} characters). You may send a screenshot with this text as its caption."
            ).format(min=intake.DESCRIPTION_MIN, max=intake.DESCRIPTION_MAX),
            kb.back_cancel(),
        )
    if step == NewRequest.account.state:
        return _("Your account number with e-Comet:"), kb.account(user.last_account_number)
    if step == NewRequest.screenshots.state:
        return (
            _(
                "Attach screenshots if you have them: one or more photos or image files "
                "(an album counts as one answer). Or press Skip."
            ),
            kb.screenshots(),
        )
    return draft_summary(_draft_view(data)), kb.confirm()


async def ask(bot: Bot, chat_id: int, state: FSMContext, user: User, notice: str | None = None) -> None:
    """Send the question of the current step (after a short notice, if any)."""
    step = await state.get_state()
    data = await state.get_data()
    text, markup = _question(step, data, user)
    if notice:
        text = f"{notice}\n\n{text}"
    sent = await bot.send_message(chat_id, text, reply_markup=markup)
    if step == NewRequest.confirm.state:
        await state.update_data(summary_message_id=sent.message_id)


async def _go(
    bot: Bot, chat_id: int, state: FSMContext, user: User, step: Any, notice: str | None = None
) -> None:
    await state.set_state(step)
    await ask(bot, chat_id, state, user, notice)


async def _drop_keyboard(callback: CallbackQuery) -> None:
    """The question was answered: its buttons go, so they cannot be pressed again."""
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)


def _text_problem_notice(problem: intake.TextProblem, minimum: int, maximum: int) -> str:
    if problem is intake.TextProblem.EMPTY:
        return _("⚠️ The message is empty. Please write it as text.")
    if problem is intake.TextProblem.TOO_SHORT:
        return _("⚠️ That is too short: at least {min} characters, please.").format(min=minimum)
    return _("⚠️ That is too long: at most {max} characters, please.").format(max=maximum)


def _not_text_notice() -> str:
    return _("⚠️ Stickers, voice messages and files can't be used here. Please write text.")


# -- starting, cancelling, going back -----------------------------------------------------------


async def start_dialog(bot: Bot, chat_id: int, state: FSMContext, user: User) -> None:
    if await state.get_state() in {step.state for step in STEPS}:
        await ask(bot, chat_id, state, user, _("You are already filling in a request; here is where you stopped."))
        return
    await state.set_data({"key": uuid.uuid4().hex, "attachments": []})
    await _go(bot, chat_id, state, user, NewRequest.kind)


@router.message(Command("new"))
async def new_command(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    await start_dialog(bot, message.chat.id, state, user)


@router.callback_query(DialogCb.filter(F.action == Nav.NEW))
async def new_button(callback: CallbackQuery, bot: Bot, state: FSMContext, user: User) -> None:
    await callback.answer()
    await start_dialog(bot, callback.from_user.id, state, user)


@router.message(Command("cancel"))
async def cancel_command(message: Message, state: FSMContext) -> None:
    await _cancel(message.chat.id, message.bot, state)


@router.callback_query(DialogCb.filter(F.action == Nav.CANCEL), StateFilter(*STEPS))
async def cancel_button(callback: CallbackQuery, bot: Bot, state: FSMContext) -> None:
    await callback.answer()
    await _drop_keyboard(callback)
    await _cancel(callback.from_user.id, bot, state)


async def _cancel(chat_id: int, bot: Bot | None, state: FSMContext) -> None:
    assert bot is not None
    if await state.get_state() is None:
        await bot.send_message(chat_id, _("There is nothing to cancel. Send /new to create a request."))
        return
    await state.clear()
    await bot.send_message(
        chat_id, _("The request is cancelled; nothing was sent."), reply_markup=kb.start_menu()
    )


@router.callback_query(DialogCb.filter(F.action == Nav.BACK), StateFilter(*STEPS))
async def back_button(callback: CallbackQuery, bot: Bot, state: FSMContext, user: User) -> None:
    await callback.answer()
    current = await state.get_state()
    names = [step.state for step in STEPS]
    index = names.index(current) if current in names else 0
    if not _pressed_on_current_question(callback, await state.get_data(), current):
        await ask(bot, callback.from_user.id, state, user, _("That button belongs to an earlier question."))
        return
    await _drop_keyboard(callback)
    target = STEPS[max(index - 1, 0)]
    if target is NewRequest.screenshots:
        # Going back to the screenshots replaces them; the description's own photo stays.
        data = await state.get_data()
        kept = [a for a in data.get("attachments", []) if a.get("step") != "screenshots"]
        await state.update_data(attachments=kept, album_id=None)
    await _go(bot, callback.from_user.id, state, user, target)


def _pressed_on_current_question(
    callback: CallbackQuery, data: dict[str, Any], current: str | None
) -> bool:
    """Back on an old question (scrolled up) must not jump around the dialog."""
    if current != NewRequest.confirm.state:
        return True
    summary = data.get("summary_message_id")
    return summary is None or callback.message is None or callback.message.message_id == summary


# -- commands typed in the middle of the dialog -------------------------------------------------


@router.message(StateFilter(*STEPS), F.text.startswith("/"))
async def unknown_command(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    await ask(bot, message.chat.id, state, user, _("⚠️ Unknown command. Continue below or send /cancel."))


# -- album parts that belong to an answer already given ----------------------------------------


async def _is_album_continuation(message: Message, state: FSMContext) -> bool:
    if not message.media_group_id:
        return False
    data = await state.get_data()
    return bool(data.get("album_id")) and data.get("album_id") == message.media_group_id


@router.message(StateFilter(*STEPS), F.media_group_id)
async def album_part(
    message: Message, bot: Bot, state: FSMContext, user: User, account_pattern: re.Pattern[str]
) -> None:
    if not await _is_album_continuation(message, state):
        await _dispatch_step(message, bot, state, user, account_pattern)
        return
    image = image_of(message)
    if image is None:
        return  # a non-image part of an accepted album: the album was the answer
    data = await state.get_data()
    step_of_album = data.get("album_step", "screenshots")
    await _add_attachment(state, image, step_of_album)
    if await state.get_state() == NewRequest.confirm.state:
        await _refresh_summary(bot, message.chat.id, state)


async def _refresh_summary(bot: Bot, chat_id: int, state: FSMContext) -> None:
    data = await state.get_data()
    summary_id = data.get("summary_message_id")
    if summary_id is None:
        return
    with contextlib.suppress(TelegramBadRequest):
        await bot.edit_message_text(
            draft_summary(_draft_view(data)),
            chat_id=chat_id,
            message_id=summary_id,
            reply_markup=kb.confirm(),
        )


async def _add_attachment(state: FSMContext, image: AttachmentIn, step: str) -> None:
    data = await state.get_data()
    attachments = list(data.get("attachments") or [])
    if any(a["file_unique_id"] == image.file_unique_id for a in attachments):
        return
    attachments.append({**image.as_dict(), "step": step})
    await state.update_data(attachments=attachments)


# -- the steps ----------------------------------------------------------------------------------


@router.callback_query(KindCb.filter(), NewRequest.kind)
async def kind_chosen(
    callback: CallbackQuery, callback_data: KindCb, bot: Bot, state: FSMContext, user: User
) -> None:
    await callback.answer()
    await _drop_keyboard(callback)
    await state.update_data(kind=callback_data.kind.value)
    await _go(bot, callback.from_user.id, state, user, NewRequest.topic)


@router.message(StateFilter(*STEPS))
async def step_answer(
    message: Message, bot: Bot, state: FSMContext, user: User, account_pattern: re.Pattern[str]
) -> None:
    await _dispatch_step(message, bot, state, user, account_pattern)


async def _dispatch_step(
    message: Message, bot: Bot, state: FSMContext, user: User, pattern: re.Pattern[str]
) -> None:
    step = await state.get_state()
    if step == NewRequest.account.state:
        await _account(message, bot, state, user, pattern)
        return
    handlers = {
        NewRequest.kind.state: _kind_typed,
        NewRequest.topic.state: _topic,
        NewRequest.description.state: _description,
        NewRequest.screenshots.state: _screenshots,
        NewRequest.confirm.state: _confirm_typed,
    }
    await handlers[step or NewRequest.kind.state](message, bot, state, user)


async def _kind_typed(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    await ask(bot, message.chat.id, state, user, _("⚠️ Please choose one of the buttons."))


async def _topic(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    if message.text is None:
        await ask(bot, message.chat.id, state, user, _not_text_notice())
        return
    topic = re.sub(r"\s+", " ", intake.normalize_text(message.text))
    problem = intake.check_topic(topic)
    if problem is not None:
        notice = _text_problem_notice(problem, intake.TOPIC_MIN, intake.TOPIC_MAX)
        await ask(bot, message.chat.id, state, user, notice)
        return
    await state.update_data(topic=topic)
    await _go(bot, message.chat.id, state, user, NewRequest.description)


async def _description(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    image = image_of(message)
    if image is not None:
        # The photo is kept even when its caption is not a usable description yet.
        await _add_attachment(state, image, "description")
        if message.media_group_id:
            await state.update_data(album_id=message.media_group_id, album_step="description")
    raw = message.text if message.text is not None else message.caption
    if raw is None:
        notice = (
            _("📎 Screenshot saved. Now please describe the problem in words.")
            if image is not None
            else _not_text_notice()
        )
        await ask(bot, message.chat.id, state, user, notice)
        return
    description = intake.normalize_text(raw)
    problem = intake.check_description(description)
    if problem is not None:
        notice = _text_problem_notice(problem, intake.DESCRIPTION_MIN, intake.DESCRIPTION_MAX)
        await ask(bot, message.chat.id, state, user, notice)
        return
    await state.update_data(description=description)
    await _go(bot, message.chat.id, state, user, NewRequest.account)


async def _account(
    message: Message, bot: Bot, state: FSMContext, user: User, pattern: re.Pattern[str]
) -> None:
    if message.text is None:
        await ask(bot, message.chat.id, state, user, _("⚠️ Please send the account number as text."))
        return
    await _take_account(message.text, pattern, message.chat.id, bot, state, user)


async def _take_account(
    text: str, pattern: re.Pattern[str], chat_id: int, bot: Bot, state: FSMContext, user: User
) -> None:
    account = intake.normalize_account(text)
    if not intake.is_valid_account(account, pattern):
        await ask(
            bot,
            chat_id,
            state,
            user,
            _("⚠️ That doesn't look like an account number. Please check it and send it again."),
        )
        return
    await state.update_data(account=account)
    await _go(bot, chat_id, state, user, NewRequest.screenshots)


@router.callback_query(DialogCb.filter(F.action == Nav.LAST_ACCOUNT), NewRequest.account)
async def last_account(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    user: User,
    account_pattern: re.Pattern[str],
) -> None:
    await callback.answer()
    if not user.last_account_number:
        await ask(bot, callback.from_user.id, state, user, _("⚠️ There is no saved number; please type it."))
        return
    await _drop_keyboard(callback)
    await _take_account(
        user.last_account_number, account_pattern, callback.from_user.id, bot, state, user
    )


async def _screenshots(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    image = image_of(message)
    if image is None:
        if message.document is not None:
            notice = _("⚠️ Only images are accepted here: send a photo or an image file, or press Skip.")
        elif message.text is not None:
            notice = _("⚠️ Please send a screenshot, or press Skip if you have none.")
        else:
            notice = _("⚠️ That is not an image. Send a photo or an image file, or press Skip.")
        await ask(bot, message.chat.id, state, user, notice)
        return
    await _add_attachment(state, image, "screenshots")
    if message.media_group_id:
        await state.update_data(album_id=message.media_group_id, album_step="screenshots")
    await _go(bot, message.chat.id, state, user, NewRequest.confirm)


@router.callback_query(DialogCb.filter(F.action == Nav.SKIP), NewRequest.screenshots)
async def skip_screenshots(callback: CallbackQuery, bot: Bot, state: FSMContext, user: User) -> None:
    await callback.answer()
    await _drop_keyboard(callback)
    await _go(bot, callback.from_user.id, state, user, NewRequest.confirm)


async def _confirm_typed(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    await ask(bot, message.chat.id, state, user, _("⚠️ Press Send to register the request, or Back to change it."))


@router.callback_query(DialogCb.filter(F.action == Nav.SEND), NewRequest.confirm)
async def send_request(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    user: User,
    session: AsyncSession,
    tickets: TicketService,
    locale: str,
) -> None:
    data = await state.get_data()
    if not _pressed_on_current_question(callback, data, NewRequest.confirm.state):
        await callback.answer()
        await ask(bot, callback.from_user.id, state, user, _("That button belongs to an earlier question."))
        return
    missing = [name for name in ("kind", "topic", "description", "account") if not data.get(name)]
    if missing:  # a state edited by hand or from an old version: ask again from that step
        await callback.answer()
        step = {"kind": NewRequest.kind, "topic": NewRequest.topic,
                "description": NewRequest.description, "account": NewRequest.account}[missing[0]]
        await _go(bot, callback.from_user.id, state, user, step)
        return
    draft = Draft(
        key=data["key"],
        kind=Kind(data["kind"]),
        topic=data["topic"],
        description=data["description"],
        account_number=data["account"],
        attachments=[
            AttachmentIn.from_dict({k: v for k, v in a.items() if k != "step"})
            for a in data.get("attachments") or []
        ],
    )
    registration = await tickets.register(session, user, draft, locale)
    await state.clear()
    await callback.answer(_("Sent"))
    await _drop_keyboard(callback)
    log.info("ticket #%s registered for %s", registration.ticket.number, user.id)


# -- stale buttons ------------------------------------------------------------------------------


@router.callback_query(DialogCb.filter())
@router.callback_query(KindCb.filter())
async def stale_button(callback: CallbackQuery, bot: Bot, state: FSMContext, user: User) -> None:
    await callback.answer(_("This button is no longer active."))
    await _drop_keyboard(callback)
    # In a dialog, the current question again; otherwise (say, a double tap on Send) the
    # short notice on the button is enough.
    if await state.get_state() in {step.state for step in STEPS}:
        await ask(bot, callback.from_user.id, state, user)
