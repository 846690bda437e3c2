"""One update at a time per chat and user, with no lock kept for a chat that is quiet.

aiogram's ``SimpleEventIsolation`` keeps a lock for every (chat, user) it has ever seen, for
the life of the process ("TODO: Unused locks cleaner is needed"). Here a lock lives only while
an update holds it or waits for it, so the map is as big as the updates in hand.

Written by hand rather than with an LRU or TTL cache: a cache may evict a lock that is held or
awaited, and the next update of that chat would then run beside the one still holding it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding it or waiting for it


class KeyedEventIsolation(BaseEventIsolation):
    def __init__(self) -> None:
        self._locks: dict[Hashable, _Entry] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0 and self._locks.get(key) is entry:
                del self._locks[key]

    def in_use(self) -> int:
        """Locks held or awaited. (Not ``__len__``: an empty isolation must not be falsy, or
        ``events_isolation or DisabledEventIsolation()`` in aiogram drops it.)"""
        return len(self._locks)

    async def close(self) -> None:
        self._locks.clear()
