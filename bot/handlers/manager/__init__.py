"""Managers (``MANAGER_IDS``): ``/summary [date]`` and ``/export [from] [to]``, in a private
chat or the staff group. Anyone else gets a polite refusal."""

from __future__ import annotations

from datetime import date, timedelta

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.services.desk_config import DeskConfig
from bot.services.managers import ManagerService
from bot.services.messaging import Messenger

router = Router(name=__name__)


def _where(message: Message, desk: DeskConfig) -> bool:
    return message.chat.type == "private" or message.chat.id == desk.staff_chat_id


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


@router.message(Command("summary", "export"))
async def manager_command(
    message: Message,
    command: CommandObject,
    user: User,
    session: AsyncSession,
    managers: ManagerService,
    messenger: Messenger,
    desk: DeskConfig,
    locale: str,
) -> None:
    if not _where(message, desk):
        return
    thread = message.message_thread_id if message.is_topic_message else None
    if not managers.is_manager(user.id):
        text = _("Sorry, summaries and exports are for the service's managers only.")
        await messenger.send(session, message.chat.id, text, thread_id=thread)
        return
    args = (command.args or "").split()
    if command.command == "summary":
        day = _date(args[0]) if args else managers.today()
        if day is None:
            await messenger.send(session, message.chat.id, _("Usage: /summary [YYYY-MM-DD]"))
            return
        await managers.send_summary(session, message.chat.id, day, locale, thread)
        return
    today = managers.today()
    first = _date(args[0]) if args else today.replace(day=1)
    last = _date(args[1]) if len(args) > 1 else today
    if first is None or last is None or first > last or last - first > timedelta(days=366):
        await messenger.send(
            session, message.chat.id, _("Usage: /export [YYYY-MM-DD] [YYYY-MM-DD] (up to a year)")
        )
        return
    await managers.send_export(session, message.chat.id, first, last, locale)
