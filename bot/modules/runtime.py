"""The loaded modules in a running desk: their contexts, routers, hooks and tasks.

Whatever part of a module fails is isolated: a router factory that raises leaves the whole
module out (it is reported, the desk starts without it); a task that raises is reported and
started again after a pause; hooks are run by :class:`~bot.modules.hooks.HookRunner`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiogram import Router
from aiogram.types import BotCommand, CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import User
from bot.handlers.routing import DeskRouter
from bot.modules.api import Audience, ModuleContext, ModuleTexts, Task
from bot.modules.hooks import HookRunner, Subscriber
from bot.modules.loader import Failure, Loaded, Modules, describe
from bot.modules.report import Reporter, Trouble
from bot.services.desk_config import DeskConfig
from bot.services.managers import ManagerService

log = logging.getLogger(__name__)

TASK_PAUSE = 5.0  # seconds before a failed task is started again, doubling up to
TASK_PAUSE_MAX = 300.0


@dataclass(frozen=True, slots=True)
class Active:
    loaded: Loaded
    context: ModuleContext


# Filters as coroutine functions: aiogram runs a synchronous filter in a thread of its own.
async def _manager_where(
    event: Message | CallbackQuery, desk: DeskConfig, user: User, managers: ManagerService
) -> bool:
    """A manager, in a private chat or the staff group (as the desk's /summary)."""
    message = event if isinstance(event, Message) else event.message
    if message is None or not managers.is_manager(user.id):
        return False
    return message.chat.type == "private" or message.chat.id == desk.staff_chat_id


class ModuleRuntime:
    def __init__(
        self,
        modules: Modules,
        *,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        single_writer: bool,
        clock: Clock,
        reporter: Reporter,
        default_locale: str,
    ) -> None:
        self.modules = modules
        self.sessions = sessions
        self.read_sessions = read_sessions
        self.clock = clock
        self.reporter = reporter
        self.failures: list[Failure] = list(modules.failed)
        self.active: list[Active] = []
        for item in modules.loaded:
            module = item.module
            texts = (
                ModuleTexts(module.locales, module.domain or item.name, default_locale)
                if module.locales is not None
                else None
            )
            context = ModuleContext(
                name=item.name,
                settings=item.settings,
                texts=texts,
                sessions=sessions,
                read_sessions=read_sessions,
                clock=clock,
                log=logging.getLogger(f"modules.{item.name}"),
                single_writer=single_writer,
            )
            self.active.append(Active(item, context))
        self.hooks: HookRunner | None = None

    def routers(self) -> dict[Audience, list[Router]]:
        """Every module's routers by audience (made now, at the dispatcher's build). A module
        whose factory raises is left out entirely: a module half there is worse than none."""
        made: dict[Audience, list[Router]] = {audience: [] for audience in Audience}
        kept: list[Active] = []
        for active in self.active:
            mine: list[tuple[Audience, Router]] = []
            try:
                for audience, factory in active.loaded.module.routers.items():
                    router = factory(active.context)
                    if not isinstance(router, Router):
                        raise TypeError(f"its {audience.value} router factory returned {router!r}")
                    mine.append((audience, router))
            except Exception as error:  # the module is left out; the desk starts
                log.exception("module %s: its routers could not be made", active.loaded.name)
                self.failures.append(
                    Failure(active.loaded.name, active.loaded.version, "routers", describe(error))
                )
                continue
            kept.append(active)
            for audience, router in mine:
                if audience is Audience.MANAGER:
                    # The desk has no manager-only router to put it in: a filtered one of its own.
                    wrapper = DeskRouter(name=f"modules.{active.loaded.name}.managers")
                    wrapper.message.filter(_manager_where)
                    wrapper.callback_query.filter(_manager_where)
                    wrapper.include_router(router)
                    router = wrapper
                made[audience].append(router)
        self.active = kept
        return made

    def account_lookups(self) -> list[Callable[[str], Awaitable[tuple[str, str] | None]]]:
        """The modules' account lookups, each bound to its module's context (SPEC §12)."""
        lookups = []
        for active in self.active:
            if active.loaded.module.accounts is not None:
                lookups.append(self._lookup(active))
        return lookups

    @staticmethod
    def _lookup(active: Active) -> Callable[[str], Awaitable[tuple[str, str] | None]]:
        accounts = active.loaded.module.accounts
        assert accounts is not None

        async def lookup(number: str) -> tuple[str, str] | None:
            try:
                found = await accounts(number, active.context)
            except Exception:
                active.context.log.exception("the account lookup failed")
                raise
            return None if found is None else (found.organisation, found.tariff)

        return lookup

    def menu(self, audience: Audience) -> list[BotCommand]:
        """The modules' commands for an audience's menu, in the current locale."""
        found: list[BotCommand] = []
        for active in self.active:
            texts = active.context.texts
            for command in active.loaded.module.commands.get(audience, ()):
                description = texts.gettext(command.description) if texts else command.description
                found.append(BotCommand(command=command.name, description=description))
        return found

    def hook_runner(self, **options: Any) -> HookRunner:
        subscribers = [
            Subscriber(active.loaded.name, dict(active.loaded.module.hooks), active.context)
            for active in self.active
            if active.loaded.module.hooks
        ]
        self.hooks = HookRunner(
            subscribers,
            sessions=self.sessions,
            read_sessions=self.read_sessions,
            clock=self.clock,
            report=self.reporter.report,
            recovered=self._hooks_work_again,
            **options,
        )
        return self.hooks

    async def _hooks_work_again(self, name: str) -> None:
        await self.reporter.worked(name, ("hook",))

    async def start(self) -> None:
        """Report what failed to load (once: see ``Reporter``), forget what works again, and
        place new modules' cursors at the end of the history."""
        for failure in self.failures:
            trouble = Trouble(failure.name, failure.stage, failure.error)
            try:
                await self.reporter.report(trouble)
            except Exception:  # a report that cannot be written is logged
                log.exception("module %s: the failure could not be reported", failure.name)
        for active in self.active:
            await self.reporter.worked(
                active.loaded.name, ("import", "settings", "migrate", "routers")
            )
            log.info(
                "module %s %s loaded: %s",
                active.loaded.name,
                active.loaded.version,
                ", ".join(active.loaded.module.adds()) or "nothing",
            )
        if self.hooks is not None:
            await self.hooks.start()

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """The coroutines to run beside the desk: the hooks, and every module's tasks."""
        running: list[Coroutine[Any, Any, None]] = []
        if self.hooks is not None and self.hooks.subscribers:
            running.append(self.hooks.run())
        for active in self.active:
            for task in active.loaded.module.tasks:
                running.append(self._supervise(active, task))
        return running

    async def _supervise(self, active: Active, task: Task) -> None:
        pause = TASK_PAUSE
        name = active.loaded.name
        while True:
            try:
                await task(active.context)
                log.info("module %s: a task has finished", name)
                return
            except Exception as error:  # noqa: BLE001 - reported, and started again later
                try:
                    await self.reporter.report(Trouble(name, "task", describe(error)))
                except Exception:  # the database away: the log has it
                    log.exception("module %s: the task's failure could not be reported", name)
            await asyncio.sleep(pause)
            pause = min(pause * 2, TASK_PAUSE_MAX)
