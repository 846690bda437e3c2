"""After registration: what the customer writes goes to their open ticket and on to staff
(SPEC §4). The ticket is the one they reply to, or their only open one; with several, the bot
asks which; with none, it offers /new."""

from __future__ import annotations

import contextlib
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Ticket, User
from bot.domain.tickets import Status, is_open
from bot.handlers.customer.common import relay_item, relay_item_from_dict, relay_item_to_dict
from bot.handlers.customer.dialog import Dialog
from bot.keyboards import customer as kb
from bot.keyboards.customer import PickTicketCb
from bot.services.resolution import ResolutionService
from bot.services.tickets import RelayItem, TicketService

router = Router(name=__name__)

PENDING = "pending_relay"  # dialog data: messages waiting for "which request?"


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message, dialog: Dialog) -> None:
    text = _("Unknown command. /help lists what I can do.")
    await dialog.messenger.send(dialog.session, dialog.user.id, text)


@router.message(F.content_type.in_({"new_chat_members", "left_chat_member", "pinned_message"}))
async def service_message(message: Message) -> None:
    """Service messages are not customer input."""


@router.message()
async def followup(
    message: Message,
    dialog: Dialog,
    tickets: TicketService,
    resolution: ResolutionService,
    locale: str,
) -> None:
    item = relay_item(message)
    session, user = dialog.session, dialog.user
    data = await dialog.state.get_data()
    pending: dict[str, Any] | None = data.get(PENDING)
    if (
        pending
        and message.media_group_id
        and pending.get("media_group_id") == message.media_group_id
    ):
        # A further part of an album whose request we are already asking about.
        pending["items"].append(relay_item_to_dict(item))
        await dialog.state.update_data({PENDING: pending})
        return

    ticket: Ticket | None = None
    if message.reply_to_message is not None:
        ticket = await tickets.ticket_of_reply(
            session, user.id, message.reply_to_message.message_id
        )
    if ticket is None:
        open_tickets = await tickets.open_tickets(session, user.id)
        if not open_tickets:
            text = _("You have no open requests. To ask something new, send /new.")
            await dialog.messenger.send(session, user.id, text, kb.start_menu())
            return
        if len(open_tickets) > 1:
            await dialog.state.update_data(
                {
                    PENDING: {
                        "media_group_id": message.media_group_id,
                        "items": [relay_item_to_dict(item)],
                    }
                }
            )
            await dialog.messenger.send(
                session,
                user.id,
                _("You have several open requests. Which one is this message about?"),
                kb.pick_ticket([(t.number, t.topic) for t in open_tickets]),
                reply_to_message_id=message.message_id,
            )
            return
        ticket = open_tickets[0]
    await tickets.relay(
        session, user, ticket, [item], media_group_id=message.media_group_id, locale=locale
    )
    if ticket.status is Status.RESOLVED and not message.media_group_id:
        # Neither closes nor reopens by itself: relayed, and the same question again.
        await resolution.ask_again(session, ticket)


@router.callback_query(PickTicketCb.filter())
async def ticket_picked(
    callback: CallbackQuery,
    callback_data: PickTicketCb,
    dialog: Dialog,
    tickets: TicketService,
    locale: str,
) -> None:
    session, user = dialog.session, dialog.user
    pending: dict[str, Any] | None = (await dialog.state.get_data()).get(PENDING)
    # The number comes from the client: it must be an open ticket of this very customer.
    ticket = await tickets.customer_ticket(session, user.id, callback_data.number)
    if not pending or ticket is None or not is_open(ticket.status):
        await callback.answer(_("This button is no longer active."), show_alert=True)
        if isinstance(callback.message, Message):
            with contextlib.suppress(TelegramBadRequest):
                await callback.message.edit_reply_markup(reply_markup=None)
        return
    items: list[RelayItem] = [relay_item_from_dict(raw) for raw in pending["items"]]
    await tickets.relay(
        session, user, ticket, items, media_group_id=pending.get("media_group_id"), locale=locale
    )
    await dialog.state.update_data({PENDING: None})
    await callback.answer()
    if isinstance(callback.message, Message):
        dialog.messenger.edit(
            session,
            user.id,
            _("Added to request #{number}.").format(number=ticket.number),
            message_id=callback.message.message_id,
        )


@router.edited_message()
async def edited(
    message: Message, user: User, session: AsyncSession, tickets: TicketService
) -> None:
    """An edit of a message already relayed is carried to the staff's copy."""
    await tickets.carry_edit(session, user, message)


@router.callback_query()
async def unknown_button(callback: CallbackQuery) -> None:
    """Data no handler understands (a forged press, or a button of an older version)."""
    await callback.answer(_("This button is no longer active."))
