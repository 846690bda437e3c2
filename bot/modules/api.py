"""What a module is, in the terms a module's author writes (SPEC §12).

A module is a Python package that names a :class:`Module` under the entry-point group
``ecomet_support.modules`` of its ``pyproject.toml``::

    [project.entry-points."ecomet_support.modules"]
    hello = "hello_module:module"

The entry point's name (``hello``) is the module's name: ``ENABLED_MODULES`` and
``DISABLED_MODULES`` use it. Its object is a :class:`Module`, or a function without arguments
that returns one. Everything a module adds is optional:

- ``routers``: for each audience (:class:`Audience`), a function of the module's
  :class:`ModuleContext` that returns an aiogram ``Router``; the desk puts it behind that
  audience's filters (the staff group's members, customers' private chats, managers).
- ``commands``: for each audience, the commands to show in its menu (:class:`MenuCommand`,
  the description a sentence of the module's catalog, shown in each language).
- ``settings``: a pydantic-settings class, read once at start with the module's own
  ``env_prefix`` (``HELLO_GREETING=...``); the instance is ``context.settings``.
- ``migrations``: a directory of Alembic revisions: the module's own history, migrated after
  the desk's (``python -m bot migrate`` and every start), in a version table of its own.
- ``locales``: a gettext directory (``<locales>/<ru|en>/LC_MESSAGES/<domain>.mo``):
  ``context.texts``.
- ``hooks``: for each :class:`EventKind`, a coroutine function called with the
  :class:`TicketEvent` after the change that caused it is committed. Hooks are driven from the
  ticket's durable history: an event is handed to a module once, in order, even across
  restarts and several instances; a hook that raises gets the event again later (with a
  growing delay) and after a few failures the event is skipped for that module and managers
  are told. A hook should finish in seconds: slow work belongs in a queue of the module's own.
- ``tasks``: coroutine functions started with the desk (a module's own queue, say); one that
  fails is reported and started again after a pause.
- ``accounts``: a coroutine function ``(account_number, context)`` asked for an account the
  desk's own (imported) accounts do not have: an :class:`AccountFound` (organisation and
  tariff code) or None. It is asked inside the customer's dialog: answer within seconds (a
  slow or failing one is passed over and the account taken as unknown).
"""

from __future__ import annotations

import gettext as gettext_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiogram.utils.i18n import I18n

if TYPE_CHECKING:
    import logging

    from aiogram import Router
    from pydantic_settings import BaseSettings
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.clock import Clock


class EventKind(StrEnum):
    """What happened to a ticket, as modules hear it."""

    CREATED = "created"
    STATUS_CHANGED = "status_changed"  # every change of status (old → new)
    FIRST_ANSWER = "first_answer"  # staff's first answer reached the customer
    RESOLVED = "resolved"  # staff gave a solution (also a status change)
    CLOSED = "closed"  # closed for whatever reason (also a status change)
    RATED = "rated"  # the customer rated the answer (``new`` is the rating, 1..5)


class Audience(StrEnum):
    """Whom a module's router serves: it is put behind the desk's filters for them."""

    CUSTOMER = "customer"  # customers' private chats: after the desk's commands, before the dialog
    STAFF = "staff"  # the staff group, its members only: before the desk's staff commands
    MANAGER = "manager"  # MANAGER_IDS, in a private chat or the staff group
    ANYONE = "anyone"  # every update, before any of the desk's routers


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """The ticket as it is when the hook runs (later than the event, perhaps)."""

    number: int
    status: str
    priority: int  # 1 (critical) .. 4 (low)
    kind: str  # incident / problem / service / development
    topic: str
    account_number: str
    customer_id: int
    by_email: bool  # the customer writes by e-mail
    assignee_id: int | None
    locale: str
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    rating: int | None
    tariff: str | None = None  # the tariff's code when the ticket was registered (None: default)

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "priority": f"P{self.priority}",
            "kind": self.kind,
            "topic": self.topic,
            "account_number": self.account_number,
            "customer_id": self.customer_id,
            "channel": "email" if self.by_email else "telegram",
            "assignee_id": self.assignee_id,
            "locale": self.locale,
            "created_at": self.created_at.isoformat(),
            "first_response_at": _iso(self.first_response_at),
            "resolved_at": _iso(self.resolved_at),
            "closed_at": _iso(self.closed_at),
            "rating": self.rating,
            "tariff": self.tariff,
        }


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One event of a ticket's history, as a hook gets it. ``key`` is unique per event and
    kind, and the same every time the event is handed over: a receiver's idempotency key."""

    id: int  # the history entry (one entry may be two kinds: a status change and "resolved")
    kind: EventKind
    at: datetime
    ticket: TicketInfo
    actor_id: int | None  # None: the desk itself (a timer)
    actor_role: str  # customer / staff / system
    old: str | None = None
    new: str | None = None

    @property
    def key(self) -> str:
        return f"{self.id}:{self.kind.value}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "event": self.kind.value,
            "at": self.at.isoformat(),
            "actor": {"id": self.actor_id, "role": self.actor_role},
            "old": self.old,
            "new": self.new,
            "ticket": self.ticket.as_json(),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class ModuleTexts:
    """A module's own gettext catalog in both languages: ``texts.gettext(msgid, locale)``,
    ``locale`` being the reader's (handlers take it as their ``locale`` parameter). Without a
    locale, the one of the update being handled (aiogram's i18n context), else the first."""

    def __init__(self, directory: Path, domain: str, default_locale: str = "en") -> None:
        self.directory = directory
        self.domain = domain
        self.default_locale = default_locale

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(
            sorted(
                path.parent.parent.name
                for path in self.directory.glob(f"*/LC_MESSAGES/{self.domain}.mo")
            )
        )

    def _catalog(self, locale: str | None) -> gettext_module.NullTranslations:
        if locale is None:
            current = I18n.get_current(no_error=True)
            locale = current.current_locale if current is not None else self.default_locale
        return _load(self.directory, self.domain, locale)

    def gettext(self, message: str, locale: str | None = None) -> str:
        return self._catalog(locale).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int, locale: str | None = None) -> str:
        return self._catalog(locale).ngettext(singular, plural, n)


@cache
def _load(directory: Path, domain: str, locale: str) -> gettext_module.NullTranslations:
    return gettext_module.translation(
        domain, localedir=str(directory), languages=[locale], fallback=True
    )


@dataclass(frozen=True, slots=True)
class ModuleContext:
    """What a module is given: its settings and texts, the desk's database and clock."""

    name: str
    settings: BaseSettings | None
    texts: ModuleTexts | None
    sessions: async_sessionmaker[AsyncSession]  # transactions (commit them yourself)
    read_sessions: async_sessionmaker[AsyncSession]  # reads that never take the write lock
    clock: Clock
    log: logging.Logger
    single_writer: bool  # SQLite: one instance; PostgreSQL: several may run at once


@dataclass(frozen=True, slots=True)
class MenuCommand:
    """A command in an audience's menu: ``/name`` and what it does (a msgid of the module's
    own catalog: the menu is set in each language)."""

    name: str
    description: str


@dataclass(frozen=True, slots=True)
class AccountFound:
    """An account a module knows (its CRM, a billing system): the organisation it belongs to
    and the code of its tariff in ``TARIFFS_FILE``."""

    organisation: str
    tariff: str


Hook = Callable[[TicketEvent, ModuleContext], Awaitable[None]]
# Asked for an account number the desk's own accounts do not have (the dialog's account step
# and registration); answer within seconds, None when unknown.
AccountLookup = Callable[[str, ModuleContext], Awaitable[AccountFound | None]]
RouterFactory = Callable[[ModuleContext], "Router"]
Task = Callable[[ModuleContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Module:
    """What one module adds to the desk (see this file's docstring)."""

    description: str = ""
    routers: Mapping[Audience, RouterFactory] = field(default_factory=dict)
    commands: Mapping[Audience, Sequence[MenuCommand]] = field(default_factory=dict)
    settings: type[BaseSettings] | None = None
    migrations: Path | None = None
    locales: Path | None = None
    domain: str = ""  # the catalog's name (``<domain>.mo``); the module's name by default
    hooks: Mapping[EventKind, Hook] = field(default_factory=dict)
    tasks: Sequence[Task] = ()
    accounts: AccountLookup | None = None

    def adds(self) -> list[str]:
        """What it adds, in words for ``python -m bot modules``."""
        parts = [f"router ({audience.value})" for audience in self.routers]
        parts += [
            "commands (" + ", ".join(f"/{c.name}" for c in commands) + ")"
            for commands in self.commands.values()
            if commands
        ]
        if self.settings is not None:
            prefix = self.settings.model_config.get("env_prefix", "")
            parts.append(f"settings ({prefix}*)" if prefix else "settings")
        if self.migrations is not None:
            parts.append("migrations")
        if self.locales is not None:
            parts.append("texts")
        if self.hooks:
            parts.append("hooks (" + ", ".join(kind.value for kind in self.hooks) + ")")
        if self.tasks:
            parts.append(f"tasks ({len(self.tasks)})")
        if self.accounts is not None:
            parts.append("account lookup")
        return parts
