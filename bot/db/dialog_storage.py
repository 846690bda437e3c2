"""aiogram FSM storage in the database (SPEC §4: a restart mid-dialog loses nothing).

Inside an update the storage is bound to the update's unit of work (:meth:`DatabaseStorage.bound`,
done by the update middleware), so the dialog step and the change it causes commit together (and
SQLite never waits on itself). Outside an update it uses a short session of its own.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.repositories import DialogRepo


class DatabaseStorage(BaseStorage):
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        read_session_factory: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.read_session_factory = read_session_factory or session_factory
        self.clock = clock
        self.key_builder = DefaultKeyBuilder(with_destiny=True)
        self._bound: AsyncSession | None = None

    def prefix_of(self, key: StorageKey) -> str:
        """The prefix of the rows of every destiny of ``key``'s chat and user (a batch reads
        them ahead: ``DialogRepo.read_ahead``)."""
        return self.key_builder.build(dataclasses.replace(key, destiny=""))

    def bound(self, session: AsyncSession) -> DatabaseStorage:
        """This storage writing through ``session`` (an update's unit of work)."""
        storage = DatabaseStorage(self.session_factory, self.clock, self.read_session_factory)
        storage._bound = session
        return storage

    @asynccontextmanager
    async def _session(self, *, write: bool) -> AsyncIterator[AsyncSession]:
        if self._bound is not None:
            yield self._bound
            return
        # aiogram reads the state before the update's unit of work begins: a plain read.
        factory = self.session_factory if write else self.read_session_factory
        async with factory() as own:
            yield own
            if write:
                await own.commit()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        async with self._session(write=True) as session:
            repo = DialogRepo(session)
            row = await repo.get(self.key_builder.build(key))
            data = dict(row.data) if row is not None else {}
            await repo.put(self.key_builder.build(key), state=name, data=data, now=self.clock.now())

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session(write=False) as session:
            row = await DialogRepo(session).get(self.key_builder.build(key))
            return row.state if row is not None else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._session(write=True) as session:
            repo = DialogRepo(session)
            row = await repo.get(self.key_builder.build(key))
            state = row.state if row is not None else None
            # Copies all the way down, in and out: a list shared between the caller and the row
            # would, changed in place, be both the row's old and new value, and never written.
            await repo.put(
                self.key_builder.build(key),
                state=state,
                data=copy.deepcopy(dict(data)),
                now=self.clock.now(),
            )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session(write=False) as session:
            row = await DialogRepo(session).get(self.key_builder.build(key))
            return copy.deepcopy(row.data) if row is not None else {}

    async def close(self) -> None:
        return None
