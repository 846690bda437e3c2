"""insert sentinels: a flush's new deliveries and history rows in one INSERT on SQLite

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('deliveries', 'ticket_events'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('_sentinel', sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ('deliveries', 'ticket_events'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('_sentinel')
