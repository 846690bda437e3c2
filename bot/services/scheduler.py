"""Timers from the database state (SPEC §3, §8): reminders and auto-close.

No in-memory flags: every sweep reads what is due, and each effect claims itself in the
database (a conditional update, or a locked row) in the transaction that records it, so it
happens once however many processes sweep and wherever one of them is killed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.repositories import TicketRepo
from bot.db.uow import transaction
from bot.services.managers import ManagerService
from bot.services.resolution import ResolutionService

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        read_session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        resolution: ResolutionService,
        interval: float,
        managers: ManagerService | None = None,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.session_factory = session_factory
        self.read_session_factory = read_session_factory
        self.clock = clock
        self.resolution = resolution
        self.managers = managers
        self.interval = interval
        self.after_commit = after_commit

    async def run(self) -> None:
        log.info("scheduler started: every %.1fs", self.interval)
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("a timer sweep failed; the next one will try again")
            await asyncio.sleep(self.interval)

    async def sweep(self) -> tuple[int, int]:
        """Close what is due, remind what is due; returns (closed, reminded)."""
        now = self.clock.now()
        async with self.read_session_factory() as session:
            repo = TicketRepo(session)
            to_close = await repo.resolved_before(now - self.resolution.auto_close_after)
            to_remind = await repo.unreminded_resolved_before(now - self.resolution.reminder_after)
        closed = reminded = 0
        for number in to_close:
            async with transaction(self.session_factory) as uow:
                session = uow.session
                closed += await self.resolution.auto_close(session, number)
        for number in to_remind:
            if number in to_close:
                continue  # the bot was down past both: closing is what is left to do
            async with transaction(self.session_factory) as uow:
                session = uow.session
                reminded += await self.resolution.remind(session, number)
        alerts = 0
        async with self.read_session_factory() as session:
            unanswered = await TicketRepo(session).awaiting_first_response()
            # Only tickets with an alert due take the write lock.
            due = [t.number for t in unanswered if self.resolution.sla_alert_due(t)]
        for number in due:
            async with transaction(self.session_factory) as uow:
                session = uow.session
                alerts += await self.resolution.check_sla(session, number)
        summaries = 0
        if self.managers is not None and await self.managers.daily(self.session_factory):
            summaries = 1
        if closed or reminded or alerts or summaries:
            log.info(
                "timers: %d auto-closed, %d reminded, %d SLA alerts, %d daily summaries",
                closed,
                reminded,
                alerts,
                summaries,
            )
            self.after_commit()
        return closed, reminded
