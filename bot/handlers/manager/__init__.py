"""Managers (``MANAGER_IDS``): ``/summary [date]`` and ``/export [from] [to]``, in a private
chat or the staff group. Anyone else gets a polite refusal."""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.handlers.filters import looks_like_command
from bot.handlers.routing import DeskRouter
from bot.services.desk_config import DeskConfig
from bot.services.managers import ManagerService
from bot.services.messaging import Messenger
from bot.views import reports as views


# Filters as coroutine functions: aiogram runs a synchronous filter in a thread of its own,
# and ``_where`` is checked for every message that gets this far.
async def _where(message: Message, desk: DeskConfig) -> bool:
    """A private chat or the staff group (its id is read at run time: the group may move)."""
    return message.chat.type == "private" or message.chat.id == desk.staff_chat_id


async def _is_manager(message: Message, user: User, managers: ManagerService) -> bool:
    return managers.is_manager(user.id)


def _thread(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


async def summary_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    managers: ManagerService,
    messenger: Messenger,
    locale: str,
) -> None:
    args = (command.args or "").split()
    day = _date(args[0]) if args else managers.today()
    if day is None:
        await messenger.send(session, message.chat.id, _("Usage: /summary [YYYY-MM-DD]"))
        return
    report = await managers.summary(session, day)
    managers.post_summary(
        session,
        message.chat.id,
        day,
        views.summary_text(report.summary, locale),
        views.summary_chart(report, locale),
        _thread(message),
    )


async def export_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    managers: ManagerService,
    messenger: Messenger,
    desk: DeskConfig,
) -> None:
    args = (command.args or "").split()
    today = managers.today()
    first = _date(args[0]) if args else today.replace(day=1)
    last = _date(args[1]) if len(args) > 1 else today
    if first is None or last is None or first > last or last - first > timedelta(days=366):
        await messenger.send(
            session, message.chat.id, _("Usage: /export [YYYY-MM-DD] [YYYY-MM-DD] (up to a year)")
        )
        return
    export = await managers.export(session, first, last)
    by_tariff = desk.book.from_file  # SPEC §12: a column of the tariff when there are tariffs
    write = partial(
        views.export_csv,
        header=views.export_header(tariffs=by_tariff),
        tz=desk.tz,
        tariffs=by_tariff,
    )
    await managers.send_export(session, message.chat.id, export, write)


async def not_a_manager(message: Message, session: AsyncSession, messenger: Messenger) -> None:
    text = _("Sorry, summaries and exports are for the service's managers only.")
    await messenger.send(session, message.chat.id, text, thread_id=_thread(message))


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.message.filter(_where, looks_like_command)  # every handler here is a command
    router.message.register(summary_command, Command("summary"), _is_manager)
    router.message.register(export_command, Command("export"), _is_manager)
    router.message.register(not_a_manager, Command("summary", "export"))
    return router
