"""Saved answers: written once by staff, sent to a ticket's customer with one press.

Titles and bodies are people's text: quoted wherever they go into an HTML message (the body
sent, every refusal, and at the edge the listing and confirmations); the answer to a button
press is plain text."""

from __future__ import annotations

import re

from aiogram import html
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Macro, User
from bot.db.repositories import EventRepo, MacroRepo, UserRepo
from bot.delivery.outbox import Outbox
from bot.domain.tickets import is_open
from bot.services.assignment import closed_refusal
from bot.services.lifecycle import Refusal
from bot.services.outgoing import to_customer
from bot.services.staff.lookup import StaffLookup

PLACEHOLDER = re.compile(r"\{(\w+)\}")
KNOWN = {"name", "number"}


def fill(body: str, values: dict[str, str]) -> str:
    """The body with its placeholders filled; everything escaped for HTML."""
    parts: list[str] = []
    last = 0
    for match in PLACEHOLDER.finditer(body):
        parts.append(html.quote(body[last : match.start()]))
        key = match.group(1)
        parts.append(html.quote(values.get(key, match.group(0))))
        last = match.end()
    parts.append(html.quote(body[last:]))
    return "".join(parts)


class MacroService:
    def __init__(self, *, clock: Clock, outbox: Outbox, lookup: StaffLookup) -> None:
        self.clock = clock
        self.outbox = outbox
        self.lookup = lookup

    async def all(self, session: AsyncSession) -> list[Macro]:
        return list(await MacroRepo(session).all())

    async def save(
        self, session: AsyncSession, title: str, body: str, author: User, *, create: bool
    ) -> None:
        if not 1 <= len(title) <= 64:
            raise Refusal(_("The title must be 1–64 characters."))
        if not 1 <= len(body) <= 3500:
            raise Refusal(_("The text must be 1–3500 characters."))
        unknown = sorted(set(PLACEHOLDER.findall(body)) - KNOWN)
        if unknown:
            raise Refusal(
                _("Unknown placeholders: {names}. Use {{name}} and {{number}}."),
                names=", ".join(unknown),
            )
        repo = MacroRepo(session)
        existing = await repo.by_title(title)
        now = self.clock.now()
        if create:
            if existing is not None:
                raise Refusal(
                    _("“{title}” exists already; use /macro_edit."), title=html.quote(title)
                )
            repo.add(Macro(title=title, body=body, created_by=author.id, updated_at=now))
            return
        if existing is None:
            raise Refusal(_("There is no saved answer “{title}”."), title=html.quote(title))
        existing.body, existing.updated_at = body, now

    async def delete(self, session: AsyncSession, title: str) -> None:
        repo = MacroRepo(session)
        existing = await repo.by_title(title)
        if existing is None:
            raise Refusal(_("There is no saved answer “{title}”."), title=html.quote(title))
        await repo.delete(existing)

    async def send(self, session: AsyncSession, macro_id: int, number: int, actor: User) -> Macro:
        """Send a saved answer to the customer of ticket ``number``; returns the one sent."""
        macro = await MacroRepo(session).get(macro_id)
        if macro is None:
            raise Refusal(_("That saved answer no longer exists."))
        ticket = await self.lookup.ticket(session, number)
        if not is_open(ticket.status):
            raise closed_refusal(ticket)
        customer = await UserRepo(session).get(ticket.customer_id)
        text = fill(
            macro.body,
            {"name": customer.first_name if customer else "", "number": str(ticket.number)},
        )
        now = self.clock.now()
        if ticket.first_response_at is None:
            ticket.first_response_at = now
        EventRepo(session).record(
            ticket.number,
            at=now,
            type="staff_message",
            actor_id=actor.id,
            actor_role="staff",
            details={"macro": macro.title},
        )
        to_customer(self.outbox, session, ticket, text, purpose="answer")
        return macro
