"""One unit of work: a session, its repositories, one commit.

Every transaction of the desk is opened here: per update (the update middleware), per batch
of updates (the poller, with SQLite's single writer), per timer sweep, per batch of delivery
outcomes, at start-up. Repositories never commit; the unit commits once when its block ends
without an error and rolls back otherwise. Inside another unit (an update in the poller's
batch) it is a savepoint, so a failing update undoes only its own changes, unless the outer
unit was opened with ``savepoints=False``: then the inner one is the outer one itself, and a
failure undoes them all (the poller's first try at a batch: see ``bot/polling.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.repositories import (
    DeliveryRepo,
    DeskSettings,
    DialogRepo,
    EventRepo,
    FailedUpdates,
    ReadAhead,
    SenderRepo,
    TicketRepo,
    UpdateLog,
    UserRepo,
)


class UnitOfWork:
    """A transaction's session and the repositories over it (made on first use)."""

    def __init__(
        self, session: AsyncSession, *, outer: UnitOfWork | None = None, savepoints: bool = True
    ) -> None:
        self.session = session
        self.outer = outer  # the batch this unit is a savepoint of, if any
        self.savepoints = savepoints  # units opened within this one are savepoints of it

    async def read_ahead(
        self,
        *,
        update_ids: Iterable[int],
        user_ids: Iterable[int],
        customer_ids: Iterable[int],
        dialog_prefixes: Iterable[str],
    ) -> None:
        """Read at once what a batch's updates would each look up on their own: whether they
        were handled already, their authors, the customers' open tickets, their dialog rows
        (:class:`~bot.db.repositories.ReadAhead`). Four statements instead of several per
        update; only without savepoints, which could roll back what it holds."""
        if self.savepoints:
            raise RuntimeError("a batch with savepoints reads as it goes")
        await self.updates.read_ahead(update_ids)
        await self.users.read_ahead(user_ids)
        await self.tickets.read_ahead_open(customer_ids)
        await self.dialogs.read_ahead(dialog_prefixes)

    async def finish_read_ahead(self) -> None:
        """Before the commit: mark the updates the batch handled (one statement)."""
        await self.updates.mark_read_ahead()

    @cached_property
    def tickets(self) -> TicketRepo:
        return TicketRepo(self.session)

    @cached_property
    def events(self) -> EventRepo:
        return EventRepo(self.session)

    @cached_property
    def users(self) -> UserRepo:
        return UserRepo(self.session)

    @cached_property
    def deliveries(self) -> DeliveryRepo:
        return DeliveryRepo(self.session)

    @cached_property
    def senders(self) -> SenderRepo:
        return SenderRepo(self.session)

    @cached_property
    def dialogs(self) -> DialogRepo:
        return DialogRepo(self.session)

    @cached_property
    def desk_settings(self) -> DeskSettings:
        return DeskSettings(self.session)

    @cached_property
    def updates(self) -> UpdateLog:
        return UpdateLog(self.session)

    @cached_property
    def failed_updates(self) -> FailedUpdates:
        return FailedUpdates(self.session)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
    *,
    within: UnitOfWork | None = None,
    after_commit: Callable[[], None] | None = None,
    savepoints: bool = True,
) -> AsyncIterator[UnitOfWork]:
    """Open a unit of work (``within``: a savepoint of that one, committed with it; or that
    one itself, if it was opened with ``savepoints=False``). ``after_commit`` runs once the
    commit has happened (say, to wake the sender)."""
    if within is not None:
        if not within.savepoints:
            yield within
            return
        ReadAhead.stop(within.session)  # a savepoint may roll back what it would hold
        async with within.session.begin_nested():
            yield UnitOfWork(within.session, outer=within)
        return
    async with sessions() as session, session.begin():
        yield UnitOfWork(session, savepoints=savepoints)
    if after_commit is not None:
        after_commit()


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[UnitOfWork]:
    """A read-only unit (no commit): the replica-friendly reads of sweeps and the sender."""
    async with sessions() as session:
        yield UnitOfWork(session)
