"""a partial index for the timer sweep's SLA check

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AWAITING = "first_response_at IS NULL AND sla_breached_at IS NULL"


def upgrade() -> None:
    # A plain CREATE INDEX: no table rebuild, so no batch mode is needed on SQLite.
    op.create_index(
        'ix_tickets_awaiting_first_response',
        'tickets',
        # The leading columns repeat the condition: SQLite's planner, without statistics,
        # then prefers this index to ix_tickets_sla_breached_at.
        ['first_response_at', 'sla_breached_at', 'status', 'created_at'],
        unique=False,
        sqlite_where=sa.text(AWAITING),
        postgresql_where=sa.text(AWAITING),
    )


def downgrade() -> None:
    op.drop_index('ix_tickets_awaiting_first_response', table_name='tickets')
