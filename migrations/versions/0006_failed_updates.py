"""failed updates: kept after their retries, to be listed and replayed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'failed_updates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('update_id', sa.BigInteger(), nullable=False),
        sa.Column('event_type', sa.String(length=32), nullable=False),
        sa.Column('chat_id', sa.BigInteger(), nullable=True),
        sa.Column('user_id', sa.BigInteger(), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('traceback', sa.Text(), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('first_failed_at', sa.DateTime(), nullable=False),
        sa.Column('last_failed_at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('retry_requested_at', sa.DateTime(), nullable=True),
        sa.Column('resolved_at', sa.DateTime(), nullable=True),
        sa.Column('resolution', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_failed_updates')),
        sa.UniqueConstraint('update_id', name=op.f('uq_failed_updates_update_id')),
    )
    op.create_index(
        'ix_failed_updates_status', 'failed_updates', ['status', 'id'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_failed_updates_status', table_name='failed_updates')
    op.drop_table('failed_updates')
