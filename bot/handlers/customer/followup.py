"""After registration: what the customer writes goes to their open ticket and on to staff
(SPEC §4). The ticket is the one they reply to, or their only open one; with several, the bot
asks which, and everything written until the answer waits, in order, and goes to the ticket
chosen; with none, it offers /new. A customer who writes faster than their pace allows is
asked once to slow down, and the extra messages reach staff coalesced."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Ticket, User
from bot.domain.tickets import Status, is_open
from bot.handlers.customer.common import relay_item, relay_item_from_dict, relay_item_to_dict
from bot.handlers.customer.dialog import Dialog
from bot.handlers.routing import DeskRouter
from bot.keyboards import customer as kb
from bot.keyboards.customer import PickTicketCb
from bot.services.pace import CustomerPace
from bot.services.resolution import ResolutionService
from bot.services.tickets import RelayItem, TicketService
from bot.views.tickets import slow_down_notice

# The messages waiting for the answer to "which request?" live in a state of their own (the
# same storage, another destiny), so that /new, /cancel or a finished request in between
# cannot drop them with the dialog's data.
WAITING = "waiting"
LEGACY_PENDING = "pending_relay"  # where an older version kept them, in the dialog's data
# Someone who comes back to a question this old is asked again rather than left guessing.
ASK_AGAIN_AFTER = timedelta(minutes=10)


class Waiting:
    """The customer's messages that wait, in order, for the request they belong to."""

    def __init__(self, dialog: Dialog) -> None:
        self.dialog = dialog
        key = dataclasses.replace(dialog.state.key, destiny=WAITING)
        self.state = FSMContext(storage=dialog.state.storage, key=key)

    async def load(self) -> dict[str, Any] | None:
        data = await self.state.get_data()
        if data.get("items"):
            return data
        legacy = (await self.dialog.state.get_data()).get(LEGACY_PENDING)
        if not legacy or not legacy.get("items"):
            return None
        group = legacy.get("media_group_id")
        data = {"items": [{**raw, "media_group_id": group} for raw in legacy["items"]]}
        await self.dialog.state.update_data({LEGACY_PENDING: None})
        await self.save(data)
        return data

    async def save(self, data: dict[str, Any]) -> None:
        await self.state.set_data(data)

    async def clear(self) -> None:
        await self.state.set_data({})


def _count(items: list[dict[str, Any]] | list[RelayItem]) -> int:
    """How many messages the customer sent: an album is one."""
    seen: set[str] = set()
    count = 0
    for item in items:
        group = item.get("media_group_id") if isinstance(item, dict) else item.media_group_id
        if group is None or group not in seen:
            count += 1
        if group is not None:
            seen.add(group)
    return count


async def unknown_command(message: Message, dialog: Dialog) -> None:
    text = _("Unknown command. /help lists what I can do.")
    await dialog.messenger.send(dialog.session, dialog.user.id, text)


async def service_message(message: Message) -> None:
    """Service messages are not customer input."""


async def followup(
    message: Message,
    dialog: Dialog,
    tickets: TicketService,
    resolution: ResolutionService,
    pace: CustomerPace,
    clock: Clock,
    locale: str,
) -> None:
    session, user = dialog.session, dialog.user
    # By message: handled again (a retry, a batch handled again), it is not counted twice.
    verdict = pace.hit(user.id, album=message.media_group_id, message_id=message.message_id)
    if verdict.warn:
        await dialog.messenger.send(session, user.id, slow_down_notice(pace.limit))
    item = relay_item(message, coalesce=verdict.over)
    waiting = Waiting(dialog)
    pending = await waiting.load()
    if (
        pending
        and message.media_group_id
        and any(raw.get("media_group_id") == message.media_group_id for raw in pending["items"])
    ):
        # A further part of an album that waits already: it waits with it.
        pending["items"].append(relay_item_to_dict(item))
        await waiting.save(pending)
        return

    ticket: Ticket | None = None
    if message.reply_to_message is not None:
        # A reply to a message of one request goes there, question or not.
        ticket = await tickets.ticket_of_reply(
            session, user.id, message.reply_to_message.message_id
        )
    if ticket is None and pending:
        pending["items"].append(relay_item_to_dict(item))
        await _still_waiting(dialog, tickets, waiting, pending, message, clock.now())
        return
    if ticket is None:
        open_tickets = await tickets.open_tickets(session, user.id)
        if not open_tickets:
            text = _("You have no open requests. To ask something new, send /new.")
            await dialog.messenger.send(session, user.id, text, kb.start_menu())
            return
        if len(open_tickets) > 1:
            pending = {"items": [relay_item_to_dict(item)], "asked_at": clock.now().isoformat()}
            await waiting.save(pending)
            await dialog.messenger.send(
                session,
                user.id,
                _("You have several open requests. Which one is this message about?"),
                kb.pick_ticket([(t.number, t.topic) for t in open_tickets]),
                reply_to_message_id=message.message_id,
            )
            return
        ticket = open_tickets[0]
    await tickets.relay(session, user, ticket, [item], locale=locale)
    if ticket.status is Status.RESOLVED and not message.media_group_id and not verdict.over:
        # Neither closes nor reopens by itself: relayed, and the same question again (once
        # for a customer who writes in a burst, not once per message).
        await resolution.ask_again(session, ticket)


async def _still_waiting(
    dialog: Dialog,
    tickets: TicketService,
    waiting: Waiting,
    pending: dict[str, Any],
    message: Message,
    now: datetime,
) -> None:
    """One more message while "which request?" is open: it waits with the others. The
    customer is told so once, and asked again if they come back to an old question."""
    session, user = dialog.session, dialog.user
    asked_at = datetime.fromisoformat(pending["asked_at"]) if pending.get("asked_at") else None
    stale = asked_at is None or now - asked_at > ASK_AGAIN_AFTER
    if pending.get("told") and not stale:
        await waiting.save(pending)
        return
    open_tickets = await tickets.open_tickets(session, user.id)
    if not open_tickets:
        await waiting.clear()
        await _none_open(dialog, _count(pending["items"]))
        return
    count = _count(pending["items"])
    if stale:
        text = _which(count)
    else:
        text = _(
            "⏳ This message waits with the previous one. Everything you send now goes to the "
            "request you choose:"
        )
    pending.update(told=True, asked_at=now.isoformat())
    await waiting.save(pending)
    await dialog.messenger.send(
        session,
        user.id,
        text,
        kb.pick_ticket([(t.number, t.topic) for t in open_tickets]),
        reply_to_message_id=message.message_id,
    )


def _which(count: int) -> str:
    return ngettext(
        "{count} message waits for your choice. Which of your open requests is it about?",
        "{count} messages wait for your choice. Which of your open requests are they about?",
        count,
    ).format(count=count)


async def _none_open(dialog: Dialog, count: int) -> None:
    text = ngettext(
        "You have no open requests now: {count} message that waited for your choice was not "
        "added to any. To ask something new, send /new.",
        "You have no open requests now: {count} messages that waited for your choice were not "
        "added to any. To ask something new, send /new.",
        count,
    ).format(count=count)
    await dialog.messenger.send(dialog.session, dialog.user.id, text, kb.start_menu())


async def ticket_picked(
    callback: CallbackQuery,
    callback_data: PickTicketCb,
    dialog: Dialog,
    tickets: TicketService,
    resolution: ResolutionService,
    clock: Clock,
    locale: str,
) -> None:
    session, user = dialog.session, dialog.user
    waiting = Waiting(dialog)
    pending = await waiting.load()
    # The number comes from the client: it must be an open ticket of this very customer.
    ticket = await tickets.customer_ticket(session, user.id, callback_data.number)
    if not pending or ticket is None or not is_open(ticket.status):
        await callback.answer(_("This button is no longer active."), show_alert=True)
        if isinstance(callback.message, Message):
            with contextlib.suppress(TelegramBadRequest):
                await callback.message.edit_reply_markup(reply_markup=None)
        if pending:
            # The messages still wait: ask again, with the requests open now.
            open_tickets = await tickets.open_tickets(session, user.id)
            if not open_tickets:
                await waiting.clear()
                await _none_open(dialog, _count(pending["items"]))
                return
            count = _count(pending["items"])
            pending.update(told=True, asked_at=clock.now().isoformat())
            await waiting.save(pending)
            await dialog.messenger.send(
                session,
                user.id,
                _which(count),
                kb.pick_ticket([(t.number, t.topic) for t in open_tickets]),
            )
        return
    items: list[RelayItem] = [relay_item_from_dict(raw) for raw in pending["items"]]
    await tickets.relay(session, user, ticket, items, locale=locale)
    await waiting.clear()
    await callback.answer()
    if ticket.status is Status.RESOLVED:
        await resolution.ask_again(session, ticket)
    if isinstance(callback.message, Message):
        count = _count(items)
        text = (
            _("Added to request #{number}.")
            if count == 1
            else ngettext(
                "{count} message added to request #{number}.",
                "{count} messages added to request #{number}.",
                count,
            )
        ).format(number=ticket.number, count=count)
        dialog.messenger.edit(session, user.id, text, message_id=callback.message.message_id)


async def edited(
    message: Message, user: User, session: AsyncSession, tickets: TicketService
) -> None:
    """An edit of a message already relayed is carried to the staff's copy."""
    await tickets.carry_edit(session, user, message)


async def unknown_button(callback: CallbackQuery) -> None:
    """Data no handler understands (a forged press, or a button of an older version)."""
    await callback.answer(_("This button is no longer active."))


# Filters as coroutine functions: aiogram runs a synchronous filter (a magic ``F`` one
# included) in a thread of its own, for every message that reaches it.
async def is_command(message: Message) -> bool:
    return message.text is not None and message.text.startswith("/")


SERVICE_CONTENT = frozenset({"new_chat_members", "left_chat_member", "pinned_message"})


async def is_service(message: Message) -> bool:
    return message.content_type in SERVICE_CONTENT


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.message.register(unknown_command, is_command)
    router.message.register(service_message, is_service)
    router.message.register(followup)
    router.callback_query.register(ticket_picked, PickTicketCb.filter())
    router.edited_message.register(edited)
    router.callback_query.register(unknown_button)
    return router
