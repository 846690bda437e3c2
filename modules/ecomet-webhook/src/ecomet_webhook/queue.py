"""The module's durable queue of deliveries (its table is made by its own migration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

metadata = sa.MetaData()

# The same table as migrations/wh_0001_deliveries.py creates (times are naive UTC).
deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_key", sa.String(64), nullable=False, unique=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("ticket_number", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending / sent / failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("claimed_until", sa.DateTime),
    sa.Column("response_status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
)


def naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_key: str
    event: str
    ticket_number: int
    payload: str
    status: str
    attempts: int
    response_status: int | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Delivery:
        return cls(
            id=row.id,
            event_key=row.event_key,
            event=row.event,
            ticket_number=row.ticket_number,
            payload=row.payload,
            status=row.status,
            attempts=row.attempts,
            response_status=row.response_status,
            error=row.error,
            created_at=aware(row.created_at) or row.created_at,
            sent_at=aware(row.sent_at),
        )


async def enqueue(
    sessions: async_sessionmaker[AsyncSession],
    *,
    event_key: str,
    event: str,
    ticket_number: int,
    payload: str,
    now: datetime,
) -> bool:
    """Queue one delivery per event; a second call for the same event adds nothing (the hook
    may run again for an event after a crash). True if it was queued now."""
    try:
        async with sessions() as session, session.begin():
            known = await session.scalar(
                sa.select(deliveries.c.id).where(deliveries.c.event_key == event_key)
            )
            if known is not None:
                return False
            await session.execute(
                deliveries.insert().values(
                    event_key=event_key,
                    event=event,
                    ticket_number=ticket_number,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=naive(now),
                    created_at=naive(now),
                )
            )
    except IntegrityError:
        return False  # queued by another instance at the same moment
    return True


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_locked: bool,
) -> list[Delivery]:
    """Due deliveries, claimed until ``now + lease``: another worker (instance) leaves them
    alone meanwhile, and takes them over if this one dies before it settles them."""
    async with sessions() as session, session.begin():
        query = (
            sa.select(deliveries)
            .where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at <= naive(now),
                sa.or_(
                    deliveries.c.claimed_until.is_(None),
                    deliveries.c.claimed_until < naive(now),
                ),
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        rows = [Delivery.of(row) for row in (await session.execute(query)).all()]
        if rows:
            await session.execute(
                deliveries.update()
                .where(deliveries.c.id.in_([row.id for row in rows]))
                .values(claimed_until=naive(now + lease))
            )
    return rows


async def settle(
    sessions: async_sessionmaker[AsyncSession],
    delivery: Delivery,
    *,
    now: datetime,
    sent: bool,
    response_status: int | None,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """Record a try: sent (never tried again), another try at ``retry_at``, or given up
    (``retry_at`` None)."""
    values: dict[str, Any] = {
        "attempts": delivery.attempts + 1,
        "response_status": response_status,
        "error": error,
        "claimed_until": None,
    }
    if sent:
        values.update(status="sent", sent_at=naive(now))
    elif retry_at is None:
        values.update(status="failed")
    else:
        values.update(next_attempt_at=naive(retry_at))
    async with sessions() as session, session.begin():
        await session.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery.id, deliveries.c.status == "pending")
            .values(**values)
        )


async def recent(session: AsyncSession, limit: int = 10) -> Sequence[Delivery]:
    rows = await session.execute(
        sa.select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
    )
    return [Delivery.of(row) for row in rows.all()]


async def forget_before(sessions: async_sessionmaker[AsyncSession], moment: datetime) -> int:
    """Finished deliveries (sent or given up) queued before ``moment`` are dropped; pending ones
    stay whatever their age."""
    async with sessions() as session, session.begin():
        result = await session.execute(
            deliveries.delete().where(
                deliveries.c.status != "pending", deliveries.c.created_at < naive(moment)
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)
