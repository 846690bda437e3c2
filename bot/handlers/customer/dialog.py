"""The guided request dialog (SPEC §4): kind → topic → description → account → screenshots →
summary. Every bad input gets a short explanation and the same question again; the answers
so far live in the dialog state, stored in the database in the update's own transaction, and
every question goes out through the outbox after that transaction commits."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.domain import intake
from bot.domain.tickets import Kind
from bot.handlers.customer.common import image_of
from bot.handlers.filters import looks_like_command
from bot.handlers.routing import DeskRouter
from bot.keyboards import customer as kb
from bot.keyboards.customer import DialogCb, KindCb, Nav
from bot.services.desk_config import DeskConfig
from bot.services.messaging import Messenger
from bot.services.tickets import (
    MAX_SCREENSHOTS,
    AttachmentIn,
    Draft,
    TicketService,
    TooManyOpenError,
)
from bot.states import STEPS, NewRequest
from bot.views.tickets import (
    DraftView,
    TicketLine,
    account_recognised,
    draft_summary,
    too_many_open,
)

log = logging.getLogger(__name__)

IN_DIALOG = StateFilter(*STEPS)
_STEP_NAMES = tuple(step.state for step in STEPS)


class Dialog:
    """The customer's dialog in one update: its state, and the way to ask the next question."""

    def __init__(
        self,
        state: FSMContext,
        user: User,
        messenger: Messenger,
        session: AsyncSession,
    ) -> None:
        self.state = state
        self.user = user
        self.messenger = messenger
        self.session = session

    async def ask(self, notice: str | None = None) -> None:
        """Send the question of the current step (after a short notice, if any)."""
        step = await self.state.get_state()
        data = await self.state.get_data()
        q = int(data.get("q", 0)) + 1  # the buttons of older questions stop working
        text, markup = _question(step, data, self.user, q)
        if notice:
            text = f"{notice}\n\n{text}"
        delivery = await self.messenger.send(self.session, self.user.id, text, markup)
        update: dict[str, Any] = {"q": q}
        if step == NewRequest.confirm.state:
            update["summary_delivery"] = delivery.id
        await self.state.update_data(update)

    async def go(self, step: State, notice: str | None = None) -> None:
        await self.state.set_state(step)
        await self.ask(notice)

    async def is_current(self, q: int) -> bool:
        return q == int((await self.state.get_data()).get("q", 0))

    async def add_attachment(self, image: AttachmentIn, step: str) -> bool:
        """Keep a screenshot; False when the request has ``MAX_SCREENSHOTS`` already (the
        first ones are kept, and the summary says how many were not taken)."""
        data = await self.state.get_data()
        attachments = list(data.get("attachments") or [])
        if any(a["file_unique_id"] == image.file_unique_id for a in attachments):
            return True
        if len(attachments) >= MAX_SCREENSHOTS:
            not_taken = dict(data.get("not_taken") or {})
            not_taken[step] = int(not_taken.get(step, 0)) + 1
            await self.state.update_data(not_taken=not_taken)
            return False
        attachments.append({**image.as_dict(), "step": step})
        await self.state.update_data(attachments=attachments)
        return True

    async def refresh_summary(self) -> None:
        """A late album part changed the draft: the summary on screen shows it."""
        data = await self.state.get_data()
        if data.get("summary_delivery") is None:
            return
        q = int(data.get("q", 0))
        self.messenger.edit(
            self.session,
            self.user.id,
            draft_summary(_draft_view(data)),
            kb.confirm(q),
            sent_by=int(data["summary_delivery"]),
        )


def _draft_view(data: dict[str, Any]) -> DraftView:
    return DraftView(
        kind=Kind(data["kind"]) if data.get("kind") else None,
        topic=data.get("topic"),
        description=data.get("description"),
        account=data.get("account"),
        attachments=len(data.get("attachments") or ()),
        not_taken=sum(int(n) for n in (data.get("not_taken") or {}).values()),
        max_attachments=MAX_SCREENSHOTS,
    )


def _question(
    step: str | None, data: dict[str, Any], user: User, q: int
) -> tuple[str, InlineKeyboardMarkup]:
    if step == NewRequest.kind.state:
        return _("What is your request about? Choose the closest option:"), kb.kinds(q)
    if step == NewRequest.topic.state:
        return (
            _("In a few words, what is it about? (a short subject, {min}–{max} characters)").format(
                min=intake.TOPIC_MIN, max=intake.TOPIC_MAX
            ),
            kb.back_cancel(q),
        )
    if step == NewRequest.description.state:
        return (
            _(
                "Describe it in detail: what you did, what you expected and what happened "
                "({min}–{max} characters). You may send a screenshot with this text as its caption."
            ).format(min=intake.DESCRIPTION_MIN, max=intake.DESCRIPTION_MAX),
            kb.back_cancel(q),
        )
    if step == NewRequest.account.state:
        return _("Your account number with e-Comet:"), kb.account(user.last_account_number, q)
    if step == NewRequest.screenshots.state:
        return (
            _(
                "Attach screenshots if you have them: one or more photos or image files "
                "(an album counts as one answer). Or press Skip."
            ),
            kb.screenshots(q),
        )
    return draft_summary(_draft_view(data)), kb.confirm(q)


async def _drop_keyboard(callback: CallbackQuery) -> None:
    """The question was answered: its buttons go, so they are not pressed again by mistake.
    Cosmetic, so sent directly: if it fails, the question counter still guards the dialog."""
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)


def _text_problem_notice(problem: intake.TextProblem, minimum: int, maximum: int) -> str:
    if problem is intake.TextProblem.EMPTY:
        return _("⚠️ The message is empty. Please write it as text.")
    if problem is intake.TextProblem.TOO_SHORT:
        return _("⚠️ That is too short: at least {min} characters, please.").format(min=minimum)
    return _("⚠️ That is too long: at most {max} characters, please.").format(max=maximum)


def _not_taken_notice() -> str:
    return _("⚠️ A request keeps at most {max} screenshots: this one was not taken.").format(
        max=MAX_SCREENSHOTS
    )


def _not_text_notice() -> str:
    return _("⚠️ Stickers, voice messages and files can't be used here. Please write text.")


# -- starting, cancelling, going back -----------------------------------------------------------


async def start_dialog(
    dialog: Dialog, tickets: TicketService, desk: DeskConfig, locale: str
) -> None:
    if await dialog.state.get_state() in _STEP_NAMES:
        await dialog.ask(_("You are already filling in a request; here is where you stopped."))
        return
    try:
        await tickets.check_can_open(dialog.session, dialog.user.id)
    except TooManyOpenError as full:
        await _too_many_open(dialog, full, desk, locale)
        return
    await dialog.state.set_data({"key": uuid.uuid4().hex, "attachments": [], "q": 0})
    await dialog.go(NewRequest.kind)


async def _too_many_open(
    dialog: Dialog, full: TooManyOpenError, desk: DeskConfig, locale: str
) -> None:
    """MAX_OPEN_TICKETS reached (SPEC §4): why nothing opens, the open ones, and a button to
    close each."""
    rows = [TicketLine(t.number, t.topic, t.status, t.created_at) for t in full.tickets]
    text = too_many_open(rows, full.limit, tz=desk.tz, locale=locale)
    markup = kb.close_mine([t.number for t in full.tickets])
    await dialog.messenger.send(dialog.session, dialog.user.id, text, markup)


async def new_command(
    message: Message, dialog: Dialog, tickets: TicketService, desk: DeskConfig, locale: str
) -> None:
    await start_dialog(dialog, tickets, desk, locale)


async def new_button(
    callback: CallbackQuery,
    dialog: Dialog,
    tickets: TicketService,
    desk: DeskConfig,
    locale: str,
) -> None:
    await callback.answer()
    await start_dialog(dialog, tickets, desk, locale)


async def cancel_command(message: Message, dialog: Dialog) -> None:
    await _cancel(dialog)


async def cancel_button(callback: CallbackQuery, dialog: Dialog) -> None:
    await callback.answer()
    await _drop_keyboard(callback)
    await _cancel(dialog)


async def _cancel(dialog: Dialog) -> None:
    if await dialog.state.get_state() is None:
        text = _("There is nothing to cancel. Send /new to create a request.")
        await dialog.messenger.send(dialog.session, dialog.user.id, text)
        return
    await dialog.state.clear()
    await dialog.messenger.send(
        dialog.session,
        dialog.user.id,
        _("The request is cancelled; nothing was sent."),
        kb.start_menu(),
    )


async def back_button(callback: CallbackQuery, callback_data: DialogCb, dialog: Dialog) -> None:
    await callback.answer()
    if not await dialog.is_current(callback_data.q):
        await dialog.ask(_("That button belongs to an earlier question."))
        return
    await _drop_keyboard(callback)
    current = await dialog.state.get_state()
    index = _STEP_NAMES.index(current) if current in _STEP_NAMES else 1
    target = STEPS[max(index - 1, 0)]
    if target is NewRequest.screenshots:
        # Going back to the screenshots replaces them; the description's own photo stays.
        data = await dialog.state.get_data()
        kept = [a for a in data.get("attachments", []) if a.get("step") != "screenshots"]
        not_taken = {k: v for k, v in (data.get("not_taken") or {}).items() if k != "screenshots"}
        await dialog.state.update_data(
            attachments=kept, not_taken=not_taken, album_id=None, summary_delivery=None
        )
    await dialog.go(target)


# -- commands typed in the middle of the dialog -------------------------------------------------


async def unknown_command(message: Message, dialog: Dialog) -> None:
    await dialog.ask(_("⚠️ Unknown command. Continue below or send /cancel."))


# -- the steps ----------------------------------------------------------------------------------


async def kind_chosen(callback: CallbackQuery, callback_data: KindCb, dialog: Dialog) -> None:
    # Any copy of the kind question will do while the kind is what we ask (it was asked again
    # after a bad input); Back and Send depend on where the customer is, so they check ``q``.
    await callback.answer()
    await _drop_keyboard(callback)
    await dialog.state.update_data(kind=callback_data.kind.value)
    await dialog.go(NewRequest.topic)


async def step_answer(
    message: Message,
    dialog: Dialog,
    account_pattern: re.Pattern[str],
    tickets: TicketService,
    locale: str,
) -> None:
    data = await dialog.state.get_data()
    if message.media_group_id and data.get("album_id") == message.media_group_id:
        await _album_part(message, dialog)
        return
    step = await dialog.state.get_state()
    if step == NewRequest.kind.state:
        await dialog.ask(_("⚠️ Please choose one of the buttons."))
    elif step == NewRequest.topic.state:
        await _topic(message, dialog)
    elif step == NewRequest.description.state:
        await _description(message, dialog)
    elif step == NewRequest.account.state:
        await _account(message, dialog, account_pattern, tickets, locale)
    elif step == NewRequest.screenshots.state:
        await _screenshots(message, dialog)
    else:
        await dialog.ask(_("⚠️ Press Send to register the request, or Back to change it."))


async def _album_part(message: Message, dialog: Dialog) -> None:
    """A further part of an album that was already taken as an answer: one answer, so it
    joins the draft quietly."""
    image = image_of(message)
    if image is None:
        return
    data = await dialog.state.get_data()
    await dialog.add_attachment(image, data.get("album_step", "screenshots"))
    if await dialog.state.get_state() == NewRequest.confirm.state:
        # The summary shows the new count, or how many were not taken.
        await dialog.refresh_summary()


async def _topic(message: Message, dialog: Dialog) -> None:
    if message.text is None:
        await dialog.ask(_not_text_notice())
        return
    topic = re.sub(r"\s+", " ", intake.normalize_text(message.text))
    problem = intake.check_topic(topic)
    if problem is not None:
        await dialog.ask(_text_problem_notice(problem, intake.TOPIC_MIN, intake.TOPIC_MAX))
        return
    await dialog.state.update_data(topic=topic)
    await dialog.go(NewRequest.description)


async def _description(message: Message, dialog: Dialog) -> None:
    image = image_of(message)
    taken = True
    if image is not None:
        # The photo is kept even when its caption is not a usable description yet.
        taken = await dialog.add_attachment(image, "description")
        if message.media_group_id:
            await dialog.state.update_data(
                album_id=message.media_group_id, album_step="description"
            )
    raw = message.text if message.text is not None else message.caption
    if raw is None:
        if image is None:
            notice = _not_text_notice()
        elif taken:
            notice = _("📎 Screenshot saved. Now please describe the problem in words.")
        else:
            notice = _not_taken_notice() + "\n" + _("Now please describe the problem in words.")
        await dialog.ask(notice)
        return
    description = intake.normalize_text(raw)
    problem = intake.check_description(description)
    if problem is not None:
        await dialog.ask(
            _text_problem_notice(problem, intake.DESCRIPTION_MIN, intake.DESCRIPTION_MAX)
        )
        return
    await dialog.state.update_data(description=description)
    await dialog.go(NewRequest.account)


async def _account(
    message: Message,
    dialog: Dialog,
    pattern: re.Pattern[str],
    tickets: TicketService,
    locale: str,
) -> None:
    if message.text is None:
        await dialog.ask(_("⚠️ Please send the account number as text."))
        return
    await _take_account(message.text, dialog, pattern, tickets, locale)


async def _take_account(
    text: str, dialog: Dialog, pattern: re.Pattern[str], tickets: TicketService, locale: str
) -> None:
    account = intake.normalize_account(text)
    if not intake.is_valid_account(account, pattern):
        await dialog.ask(
            _("⚠️ That doesn't look like an account number. Please check it and send it again.")
        )
        return
    await dialog.state.update_data(account=account)
    # A known account is recognised (SPEC §12); an unknown one is taken as it is, and its
    # request is served on the default tariff.
    known = await tickets.account(dialog.session, account)
    await dialog.go(NewRequest.screenshots, account_recognised(known, locale) if known else None)


async def last_account(
    callback: CallbackQuery,
    dialog: Dialog,
    account_pattern: re.Pattern[str],
    tickets: TicketService,
    locale: str,
) -> None:
    await callback.answer()
    if not dialog.user.last_account_number:
        await dialog.ask(_("⚠️ There is no saved number; please type it."))
        return
    await _drop_keyboard(callback)
    await _take_account(dialog.user.last_account_number, dialog, account_pattern, tickets, locale)


async def _screenshots(message: Message, dialog: Dialog) -> None:
    image = image_of(message)
    if image is None:
        if message.document is not None:
            notice = _(
                "⚠️ Only images are accepted here: send a photo or an image file, or press Skip."
            )
        elif message.text is not None:
            notice = _("⚠️ Please send a screenshot, or press Skip if you have none.")
        else:
            notice = _("⚠️ That is not an image. Send a photo or an image file, or press Skip.")
        await dialog.ask(notice)
        return
    taken = await dialog.add_attachment(image, "screenshots")
    if message.media_group_id:
        await dialog.state.update_data(album_id=message.media_group_id, album_step="screenshots")
    await dialog.go(NewRequest.confirm, None if taken else _not_taken_notice())


async def skip_screenshots(callback: CallbackQuery, dialog: Dialog) -> None:
    await callback.answer()
    await _drop_keyboard(callback)
    await dialog.go(NewRequest.confirm)


async def send_request(
    callback: CallbackQuery,
    callback_data: DialogCb,
    dialog: Dialog,
    tickets: TicketService,
    desk: DeskConfig,
    locale: str,
) -> None:
    if not await dialog.is_current(callback_data.q):
        await callback.answer()
        await dialog.ask(_("That button belongs to an earlier question."))
        return
    data = await dialog.state.get_data()
    missing = [name for name in ("kind", "topic", "description", "account") if not data.get(name)]
    if missing:  # a state from an older version of the dialog: ask again from that step
        await callback.answer()
        await dialog.go(_STEP_OF_FIELD[missing[0]])
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
    try:
        registration = await tickets.register(dialog.session, dialog.user, draft, locale)
    except TooManyOpenError as full:
        # The draft stays: once one request is closed, Send works.
        await callback.answer()
        await _too_many_open(dialog, full, desk, locale)
        return
    await dialog.state.clear()
    await callback.answer(_("Sent"))
    await _drop_keyboard(callback)
    log.info("ticket #%s registered for %s", registration.ticket.number, dialog.user.id)


_STEP_OF_FIELD = {
    "kind": NewRequest.kind,
    "topic": NewRequest.topic,
    "description": NewRequest.description,
    "account": NewRequest.account,
}


# -- stale buttons ------------------------------------------------------------------------------


async def stale_button(callback: CallbackQuery, dialog: Dialog) -> None:
    await callback.answer(_("This button is no longer active."))
    await _drop_keyboard(callback)
    # In a dialog, the current question again; otherwise (say, a double tap on Send) the
    # short notice on the button is enough.
    if await dialog.state.get_state() in _STEP_NAMES:
        await dialog.ask()


async def _in_dialog_or_command(message: Message, raw_state: str | None = None) -> bool:
    """Every message handler here takes a command or a step's answer: one check on the router
    lets a customer's follow-up (most messages the desk gets) pass by without four."""
    return raw_state in _STEP_NAMES or await looks_like_command(message)


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.message.filter(_in_dialog_or_command)
    router.message.register(new_command, Command("new"))
    router.callback_query.register(new_button, DialogCb.filter(F.action == Nav.NEW))
    router.message.register(cancel_command, Command("cancel"))
    router.callback_query.register(
        cancel_button, DialogCb.filter(F.action == Nav.CANCEL), IN_DIALOG
    )
    router.callback_query.register(back_button, DialogCb.filter(F.action == Nav.BACK), IN_DIALOG)
    router.message.register(unknown_command, IN_DIALOG, F.text.startswith("/"))
    router.callback_query.register(kind_chosen, KindCb.filter(), NewRequest.kind)
    router.message.register(step_answer, IN_DIALOG)
    router.callback_query.register(
        last_account, DialogCb.filter(F.action == Nav.LAST_ACCOUNT), NewRequest.account
    )
    router.callback_query.register(
        skip_screenshots, DialogCb.filter(F.action == Nav.SKIP), NewRequest.screenshots
    )
    router.callback_query.register(
        send_request, DialogCb.filter(F.action == Nav.SEND), NewRequest.confirm
    )
    router.callback_query.register(stale_button, KindCb.filter())
    router.callback_query.register(stale_button, DialogCb.filter())
    return router
