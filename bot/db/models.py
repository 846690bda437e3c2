"""Tables of the desk. Times are stored as UTC and come back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    orm_insert_sentinel,
    relationship,
)

from bot.domain.tickets import CloseReason, Kind, Priority, Status


class UTCDateTime(TypeDecorator[datetime]):
    """SQLite has no time zones: store naive UTC, always hand back aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class EnumValue(TypeDecorator[Any]):
    """An enum stored as its plain value (text or integer) and loaded back as the enum, so
    ``ticket.status is Status.NEW`` holds for rows read from the database."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[Any], length: int | None = None) -> None:
        super().__init__(length)
        self.enum = enum
        if issubclass(enum, int):
            self.impl = Integer()  # type: ignore[assignment]

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum(value)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        int: Integer(),
    }


# Customers who write by e-mail (SPEC §10) are people of the desk like Telegram users, with ids
# of their own above every Telegram id: Telegram's user ids have at most 52 significant bits,
# so everything from 2**53 up is free (and far below the 64 bits the database keeps).
MAIL_CUSTOMER_BASE = 2**53


def is_mail_customer(user_id: int) -> bool:
    """Whether the person (a ticket's customer, a delivery's chat) is reached by e-mail."""
    return user_id >= MAIL_CUSTOMER_BASE


class User(Base):
    """Anyone who wrote to the bot: customers, and staff once they act."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(String(256))
    last_name: Mapped[str | None] = mapped_column(String(256))
    username: Mapped[str | None] = mapped_column(String(64))
    language_code: Mapped[str | None] = mapped_column(String(16))
    locale: Mapped[str | None] = mapped_column(String(8))  # the user's own choice (/language)
    last_account_number: Mapped[str | None] = mapped_column(String(64))
    blocked_bot_at: Mapped[datetime | None]
    staff_seen_at: Mapped[datetime | None]  # acted in the staff group: can be assigned tickets
    # A customer who writes by e-mail (id from MAIL_CUSTOMER_BASE up): their address.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Ticket(Base):
    __tablename__ = "tickets"
    # AUTOINCREMENT on SQLite: a number is never reused, even after the last row is deleted.
    __table_args__ = (
        Index("ix_tickets_queue", "status", "priority", "created_at"),
        Index("ix_tickets_customer", "customer_id", "status"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_resolved_at", "status", "resolved_at"),
        # For the managers' figures of a day (benchmarks/summary_million.py measured them):
        Index("ix_tickets_resolved_on", "resolved_at"),
        Index("ix_tickets_first_response_at", "first_response_at"),
        Index("ix_tickets_sla_breached_at", "sla_breached_at"),
        Index("ix_tickets_backlog", "closed_at", "created_at", "priority"),
        Index("ix_tickets_problem", "problem_number", "status"),
        # The timer sweep's SLA check, every SCHEDULER_INTERVAL: only the tickets still waiting
        # for a first answer are in it (the benchmark: 231 ms a sweep on a million without it).
        # (Its leading columns repeat its condition: so SQLite's planner, without statistics,
        # prefers it to ix_tickets_sla_breached_at.)
        Index(
            "ix_tickets_awaiting_first_response",
            "first_response_at",
            "sla_breached_at",
            "status",
            "created_at",
            sqlite_where=text("first_response_at IS NULL AND sla_breached_at IS NULL"),
            postgresql_where=text("first_response_at IS NULL AND sla_breached_at IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    number: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    # The dialog's draft id: pressing Send twice (or a redelivered update) registers one ticket.
    intake_key: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    account_number: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(256))
    kind: Mapped[Kind] = mapped_column(EnumValue(Kind, 16))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[Priority] = mapped_column(EnumValue(Priority))
    status: Mapped[Status] = mapped_column(EnumValue(Status, 24))
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    line: Mapped[int] = mapped_column(Integer, default=1)
    locale: Mapped[str] = mapped_column(String(8))  # the customer's language when they wrote
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[CloseReason | None] = mapped_column(EnumValue(CloseReason, 16))
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_thread_id: Mapped[int | None] = mapped_column(BigInteger)  # forum topic of the ticket
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    after_hours_notice_at: Mapped[datetime | None]
    # Timers (SPEC §3): each is set in the same conditional update that claims its effect,
    # so a reminder, an auto-close or an SLA alert happens once whatever runs the sweep.
    reminded_at: Mapped[datetime | None]
    close_note: Mapped[str | None] = mapped_column(Text)  # the customer's reason to close
    sla_warned_at: Mapped[datetime | None]
    sla_breached_at: Mapped[datetime | None]
    waiting_since: Mapped[datetime | None]  # the SLA clock pauses while we wait
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # SPEC §13: the problem ticket this one is an incident of (bot/domain/problems.py), and
    # when its customer was told that it is a known problem (once, however often relinked).
    problem_number: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tickets.number", name="fk_tickets_problem_number_tickets")
    )
    problem_told_at: Mapped[datetime | None]
    # SPEC §12: the code of the tariff in force when the ticket was registered, so that a later
    # import of accounts does not rewrite its SLA. NULL (tickets from before tariffs): the
    # default tariff.
    tariff: Mapped[str | None] = mapped_column(String(64))

    customer: Mapped[User] = relationship(lazy="raise")
    attachments: Mapped[list[Attachment]] = relationship(
        lazy="raise", order_by="Attachment.id", back_populates="ticket"
    )


class TicketEvent(Base):
    """Append-only history: who, when, what, old → new."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        Index("ix_ticket_events_ticket", "ticket_number", "id"),
        Index("ix_ticket_events_type_at", "type", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_number: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.number"))
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # None: the system
    actor_role: Mapped[str] = mapped_column(String(16))  # customer / staff / system
    type: Mapped[str] = mapped_column(String(32))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]
    # See Delivery._sentinel: an update's history rows of a batch in one INSERT.
    _sentinel: Mapped[int | None] = orm_insert_sentinel()


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_ticket", "ticket_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_number: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.number"))
    kind: Mapped[str] = mapped_column(String(16))  # photo / document
    file_id: Mapped[str] = mapped_column(String(256))
    file_unique_id: Mapped[str] = mapped_column(String(128))
    file_name: Mapped[str | None] = mapped_column(String(256))
    mime_type: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]

    ticket: Mapped[Ticket] = relationship(lazy="raise", back_populates="attachments")


class MessageLink(Base):
    """Which customer-side message is which staff-side message (never ``forward_from``)."""

    __tablename__ = "message_links"
    __table_args__ = (
        UniqueConstraint("staff_chat_id", "staff_message_id", name="uq_message_links_staff"),
        Index("ix_message_links_customer", "customer_chat_id", "customer_message_id"),
        Index("ix_message_links_ticket", "ticket_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_number: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.number"))
    # What the message is: the purpose of the delivery that made it (card, card_copy,
    # card_media, relay, resolve_prompt, staff_note, hint, answer, notice, ...) or "note" for a
    # staff note. A reply to it is an answer only for some (bot/services/staff.py).
    direction: Mapped[str] = mapped_column(String(16))
    customer_chat_id: Mapped[int] = mapped_column(BigInteger)
    customer_message_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class Delivery(Base):
    """An outgoing Bot API call, written in the transaction of the change that causes it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "not_before"),
        Index("ix_deliveries_stream", "stream", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]
    chat_id: Mapped[int] = mapped_column(BigInteger)
    # Deliveries of one stream go out in order (one chat, one ticket); streams run in parallel.
    stream: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer)  # lower goes first: waiting customers, then P1...
    method: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(32))  # SenderInstance.id
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    ticket_number: Mapped[int | None] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(24))  # card / relay / notice / ...
    # What to record once sent: e.g. the customer message ids this relay copies.
    context: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    # Lets SQLite take the deliveries of a flush in one INSERT ... RETURNING: SQLAlchemy
    # numbers the rows here to match the ids it reads back, which SQLite's own ids cannot
    # (without it, one INSERT per row: a polled batch of 100 follow-ups made 100). Set only
    # while inserting; NULL otherwise.
    _sentinel: Mapped[int | None] = orm_insert_sentinel()


class ChatOwner(Base):
    """Which sender sends to a chat (SPEC §11): one at a time, so that several instances
    together keep the chat's Telegram limits (each keeps them for the chats it holds). Held
    until ``until``: while the holder sends. A holder that stops leaves what its limit
    remembers in ``memory`` and lets the chat go at once; one that cannot say (a call's answer
    still unknown) holds the chat until its limit is as good as new (bot/delivery/sender.py)."""

    __tablename__ = "chat_owners"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(32))  # SenderInstance.id
    until: Mapped[datetime] = mapped_column(index=True)
    # Left by a sender that stopped: what its limit for the chat remembered (the limiter's
    # ``memory`` and ``at``, when), so that the next holder goes on from there at once.
    memory: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)


class SenderInstance(Base):
    """A running sender's heartbeat. Leases of an instance that stopped beating (killed) are
    taken over at once instead of waiting for them to expire."""

    __tablename__ = "sender_instances"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class DialogState(Base):
    """aiogram FSM state and data: the customer's half-filled request survives restarts."""

    __tablename__ = "dialog_states"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class ProcessedUpdate(Base):
    """Update ids already handled: a redelivered update (restart before the offset moved) is
    skipped instead of being applied twice."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)


class FailedUpdate(Base):
    """An update whose handling failed every attempt: kept (its whole JSON) with its error until
    an operator replays it (``python -m bot failed retry``). ``status``: ``pending`` (waits),
    ``retried`` (a replay was asked for; the running bot replays it), ``resolved`` (done)."""

    __tablename__ = "failed_updates"
    __table_args__ = (Index("ix_failed_updates_status", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    event_type: Mapped[str] = mapped_column(String(32))  # message / callback_query / ...
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]]  # the update as Telegram sent it
    error: Mapped[str] = mapped_column(Text)  # the last error: "TypeName: message"
    traceback: Mapped[str] = mapped_column(Text)  # its last frames
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    retry_requested_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)  # replayed / already applied / ...


class Macro(Base):
    """A saved answer; ``{name}`` and ``{number}`` are filled in when it is sent."""

    __tablename__ = "macros"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class DeskSetting(Base):
    """What the desk learned at run time and must remember, e.g. the staff group's new id
    after Telegram upgraded it to a supergroup."""

    __tablename__ = "desk_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MailMessage(Base):
    """Every mail of a ticket's thread, both ways (SPEC §10): a reply finds its ticket by the
    ids it refers to, and an answer refers to the thread so far. An incoming mail is recorded
    once (its Message-ID is the key): a mailbox read again after a restart adds nothing."""

    __tablename__ = "mail_messages"

    message_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    ticket_number: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tickets.number"), index=True
    )
    direction: Mapped[str] = mapped_column(String(8))  # in / out
    # What became of an incoming mail: ticket / followup / noise / unparsed / unknown.
    outcome: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Organisation(Base):
    """A customer organisation and the tariff it bought (SPEC §12; codes of TARIFFS_FILE)."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    tariff: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Account(Base):
    """A customer account number (what the dialog asks for) and the organisation it belongs
    to: ``python -m bot accounts import`` keeps them."""

    __tablename__ = "accounts"

    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    organisation: Mapped[Organisation] = relationship(lazy="raise")
