"""Coalescing what the staff group is sent (SPEC §8): the group takes 20 messages a minute, all
its topics together, so a burst of hundreds of customer messages cannot go one by one.

Two things, both decided at send time by the sender (which knows the queue and the budget) and
done here (which knows tickets and people):

- **joining**: when a ticket's relay is about to go and more of the same customer's messages
  wait behind it in the ticket's stream, they leave in the same call: in a forum, one
  ``copyMessages`` (each message keeps its own copy, so replies and edits map exactly); in a
  plain group, or whenever the group is crowded, texts are joined into one message under a
  header saying who wrote and when (one message of the budget instead of many). Outside bursts
  this is what keeps one chatty customer from being relayed one round trip per message.
- **the burst digest**: when more staff-side messages wait than the group's budget sends in a
  minute, everything queued that staff have not seen yet — new tickets and customers' words —
  is summed up in the General topic (or the plain group) in as few messages as fit, each ticket
  a ``/ticket_N`` shortcut. Each ticket's card and topic still follow as the budget allows, so
  the topic ends up holding the whole conversation.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import methods
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Delivery, Ticket, User
from bot.db.repositories import DeliveryRepo, TicketRepo, UserRepo
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent, Refs
from bot.delivery.outbox import Outbox
from bot.delivery.outcomes import Outcomes
from bot.domain.tickets import Kind, Priority
from bot.services.cards import display_name
from bot.services.desk_config import DeskConfig
from bot.services.notices_desk import CoalescedHeader
from bot.services.outgoing import TicketTags
from bot.services.rendering import Renderer

# A joined text (header + the customer's words) stays under Telegram's 4096 characters, with
# room for the header.
JOINED_TEXT_LIMIT = 3800
# copyMessages takes at most 100 message ids.
COPY_MESSAGES_LIMIT = 100
# One digest message, in visible characters (Telegram's limit is 4096).
DIGEST_LIMIT = 3900
# What a digest quotes of one customer message, and of a new ticket's description.
DIGEST_WORDS = 300
DIGEST_FIRST_WORDS = 160


@dataclass(frozen=True, slots=True)
class DigestHeader:
    """The head of a burst digest: how many requests and messages it sums up."""

    tickets: int
    messages: int
    new: int = 0  # how many of the requests are new: two or more can be linked at one press


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One ticket in a burst digest: a new ticket (kind, priority, topic, first words of its
    description) or the words its customer added. ``words`` are plain text (escaped when
    rendered); ``files`` counts photos and files that follow in the ticket's own topic."""

    number: int
    customer: str
    new: bool
    kind: Kind | None = None
    priority: Priority | None = None
    topic: str | None = None
    words: tuple[str, ...] = ()
    files: int = 0


@dataclass(slots=True)
class _Pending:
    """What waits for one ticket, as the digest sums it up."""

    ticket: Ticket
    new: bool = False
    words: list[str] = field(default_factory=list)
    files: int = 0
    rows: list[Delivery] = field(default_factory=list)


class Coalescer:
    def __init__(
        self, *, config: DeskConfig, clock: Clock, outbox: Outbox, render: Renderer
    ) -> None:
        self.config = config
        self.clock = clock
        self.outbox = outbox
        self.render = render

    def register(self, outcomes: Outcomes) -> Outcomes:
        outcomes.join = self.join
        outcomes.digest = self.digest
        return outcomes

    # -- joining -----------------------------------------------------------------------------

    async def join(
        self,
        session: AsyncSession,
        head: Delivery,
        followers: Sequence[Delivery],
        *,
        crowded: bool,
        room: int,
    ) -> list[Delivery]:
        """Take into ``head`` (a relay about to be sent) the relays queued right behind it;
        return those taken (they are sent as part of ``head``). ``room``: how many more messages
        the group's budget takes now besides ``head`` (a copyMessages of n counts n)."""
        tags = TicketTags.of(head)
        if head.purpose != "relay" or head.method != "CopyMessage" or not followers:
            return []
        queued = 1 + sum(
            1 for _ in itertools.takewhile(lambda row: _joinable(row, head), followers)
        )
        # In a forum each message keeps a copy of its own while the budget takes them all;
        # beyond it, or in a plain group (where a copy could not reply to the card), texts
        # are joined into one message.
        copies = self.config.staff_is_forum and not crowded and queued <= room + 1
        if tags.text is not None and not copies:
            return await self._join_texts(session, head, tags, followers)
        if self.config.staff_is_forum and room > 0:
            return self._join_copies(head, tags, followers, min(room + 1, COPY_MESSAGES_LIMIT))
        return []

    def _join_copies(
        self, head: Delivery, tags: TicketTags, followers: Sequence[Delivery], limit: int
    ) -> list[Delivery]:
        ids = [*tags.customer_message_ids]
        taken: list[Delivery] = []
        for row in followers:
            more = TicketTags.of(row).customer_message_ids
            # copyMessages wants increasing ids of one chat, and copies them in that order.
            if (
                not _joinable(row, head)
                or len(more) != 1
                or more[0] <= ids[-1]
                or len(ids) >= limit
            ):
                break
            ids.append(more[0])
            taken.append(row)
        if not taken:
            return []
        payload = {
            "chat_id": head.payload["chat_id"],
            "from_chat_id": head.payload["from_chat_id"],
            "message_ids": ids,
        }
        head.method = "CopyMessages"
        tags.customer_message_ids = ids
        Outbox.revise(head, payload, tags)
        return taken

    async def _join_texts(
        self,
        session: AsyncSession,
        head: Delivery,
        tags: TicketTags,
        followers: Sequence[Delivery],
    ) -> list[Delivery]:
        assert tags.text is not None
        texts, ids = [tags.text], [*tags.customer_message_ids]
        first = last = tags.sent
        chars = len(tags.text)
        taken: list[Delivery] = []
        for row in followers:
            more = TicketTags.of(row)
            if not _joinable(row, head) or more.text is None:
                break
            if chars + 1 + len(more.text) > JOINED_TEXT_LIMIT:
                break
            texts.append(more.text)
            ids += more.customer_message_ids
            chars += 1 + len(more.text)
            last = more.sent or last
            taken.append(row)
        if not taken:
            return []
        now = self.clock.now().timestamp()
        name = tags.name
        if name is None:  # queued by a version that did not note it
            customer = await self._customer(session, head)
            name = display_name(customer, head.payload["from_chat_id"])
        heading = CoalescedHeader(
            name=name,
            count=len(texts),
            first=datetime.fromtimestamp(first or now, UTC),
            last=datetime.fromtimestamp(last or now, UTC),
            tz=self.config.tz,
        )
        header = self.render(heading, self.config.default_locale).text
        body = "\n".join(texts)
        head.method = "SendMessage"
        joined = TicketTags(
            reply_to_card=True,
            coalesced="text",
            coalesced_message_ids=ids,
            body=body,
            chars=chars,
            count=len(texts),
            first=first,
            last=last,
        )
        payload = {"chat_id": head.payload["chat_id"], "text": f"{header}\n{body}"}
        if "reply_parameters" in head.payload:  # the card's id, known at intake already
            payload["reply_parameters"] = head.payload["reply_parameters"]
            joined.reply_to_card = False
        Outbox.revise(head, payload, joined)
        return taken

    async def _customer(self, session: AsyncSession, row: Delivery) -> User | None:
        party = Refs.of(row).party
        return await UserRepo(session).get(int(party)) if party is not None else None

    # -- the burst digest --------------------------------------------------------------------

    async def digest(self, session: AsyncSession, chat_id: int) -> int:
        """Sum up in the group's digest what waits for it and staff have not seen yet; return
        how many queued deliveries it newly covers (0: nothing new to sum up).

        A digest not sent yet is written anew with what arrived since (one entry per ticket,
        its header counting them all); one already sent stays as it is, and what it showed is
        not shown again."""
        if chat_id != self.config.staff_chat_id:
            return 0
        repo = DeliveryRepo(session)
        stream = f"{chat_id}:digest"
        unsent = list(await repo.unclaimed_in_stream(stream))
        open_digests = {row.id for row in unsent}
        rows = [
            row
            for row in await repo.unseen_for_chat(chat_id, purposes=("card", "relay"))
            if (digest := TicketTags.of(row).digest) is None or digest in open_digests
        ]
        fresh = sum(1 for row in rows if TicketTags.of(row).digest is None)
        if not fresh:
            return 0
        entries, covered, new = await self._entries(session, rows)
        if not entries:
            return 0
        head = DigestHeader(len(entries), covered, len(new))
        header = self.render(head, self.config.default_locale)
        messages = _pack(header.text, entries)
        digests: list[Delivery] = []
        for index, (text, numbers) in enumerate(messages):
            payload: dict[str, Any] = {"chat_id": chat_id, "text": text}
            if header.reply_markup is not None and len(new.intersection(numbers)) >= 2:
                # "Link these new requests to one problem" (SPEC §13): the press reads the
                # requests from this message's own lines.
                payload["reply_markup"] = header.reply_markup
            if index < len(unsent):
                Outbox.revise(unsent[index], payload, TicketTags())
                digests.append(unsent[index])
                continue
            intent = Intent(
                chat_id=chat_id,
                method=methods.SendMessage,
                payload=payload,
                purpose="digest",
                stream=stream,
                # Before every ticket's own messages: what staff see of a burst first.
                rank=RANK_CUSTOMER_WAITING,
                refs=Refs(grows=True),
            )
            digests.append(self.outbox.add(session, intent))
        # A digest no longer needed: what it showed has meanwhile been sent on its own.
        now = self.clock.now()
        repo.merged(unsent[len(messages) :], into=digests[0].id, now=now)
        await session.flush()  # the new digests' ids, for the rows to point at
        shown_in = {
            number: digests[index].id
            for index, (_, numbers) in enumerate(messages)
            for number in numbers
        }
        for row in rows:
            tags = TicketTags.of(row)
            tags.digest = shown_in.get(row.ticket_number or 0, tags.digest)
            Outbox.revise(row, row.payload, tags)
        return fresh

    async def _entries(
        self, session: AsyncSession, rows: Sequence[Delivery]
    ) -> tuple[list[tuple[int, str]], int, set[int]]:
        """One rendered entry per ticket (most urgent first), how many messages they hold, and
        which of the tickets are new."""
        numbers = sorted({row.ticket_number for row in rows if row.ticket_number is not None})
        tickets = {ticket.number: ticket for ticket in await TicketRepo(session).get_many(numbers)}
        users = await UserRepo(session).get_many({t.customer_id for t in tickets.values()})
        pending: dict[int, _Pending] = {}
        for row in rows:
            ticket = tickets.get(row.ticket_number or 0)
            if ticket is None:
                continue
            waiting = pending.setdefault(ticket.number, _Pending(ticket))
            waiting.rows.append(row)
            tags = TicketTags.of(row)
            if row.purpose == "card":
                waiting.new = True
            elif tags.text is not None:
                waiting.words.append(_plain(tags.text, DIGEST_WORDS))
            elif tags.body is not None:  # joined already at intake
                waiting.words += [_plain(line, DIGEST_WORDS) for line in tags.body.split("\n")]
            else:
                waiting.files += max(1, len(tags.customer_message_ids))
        entries: list[tuple[int, str]] = []
        for number in sorted(pending, key=lambda n: (int(pending[n].ticket.priority), n)):
            item = pending[number]
            ticket = item.ticket
            user = users.get(ticket.customer_id)
            # A new ticket says first what it is about: the first words of its description.
            first = (_plain(html.escape(ticket.description), DIGEST_FIRST_WORDS),)
            entry = DigestEntry(
                number=number,
                customer=display_name(user) if user is not None else str(ticket.customer_id),
                new=item.new,
                kind=ticket.kind if item.new else None,
                priority=ticket.priority if item.new else None,
                topic=ticket.topic if item.new else None,
                words=(*(first if item.new else ()), *item.words),
                files=item.files,
            )
            entries.append((number, self.render(entry, self.config.default_locale).text))
        new = {number for number, item in pending.items() if item.new}
        return entries, sum(len(p.rows) for p in pending.values()), new


def _joinable(row: Delivery, head: Delivery) -> bool:
    """A plain relay (one customer message) of the same ticket and customer, waiting right
    behind ``head`` and replying where it does (the card): a reply to anything else keeps a
    call of its own."""
    return (
        row.purpose == "relay"
        and row.method == "CopyMessage"
        and Refs.of(row).joins
        and row.ticket_number == head.ticket_number
        and row.payload.get("from_chat_id") == head.payload.get("from_chat_id")
        and row.payload.get("reply_parameters") == head.payload.get("reply_parameters")
    )


def _pack(header: str, entries: Sequence[tuple[int, str]]) -> list[tuple[str, list[int]]]:
    """The digest's messages, as few as fit: each the header and entries up to DIGEST_LIMIT
    characters, with the tickets it names. An entry too long for one message (a customer who
    wrote a lot) is split between its lines, never inside one (a line holds at most
    DIGEST_WORDS of words, so it always fits)."""
    messages: list[tuple[str, list[int]]] = []
    text, numbers = header, list[int]()
    for number, entry in entries:
        for line in entry.split("\n"):
            if len(text) + 1 + len(line) > DIGEST_LIMIT and numbers:
                messages.append((text, numbers))
                text, numbers = header, list[int]()
            text = f"{text}\n{line}"
            if number not in numbers:
                numbers.append(number)
    if numbers:
        messages.append((text, numbers))
    return messages


_TAG = re.compile(r"<[^>]+>")


def _plain(text_html: str, limit: int) -> str:
    """A customer's HTML text as plain words, cut at ``limit`` characters."""
    plain = " ".join(html.unescape(_TAG.sub("", text_html)).split())
    return plain if len(plain) <= limit else plain[: limit - 1].rstrip() + "…"
