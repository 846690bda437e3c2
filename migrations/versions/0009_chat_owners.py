"""several instances: which sender sends to a chat

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'chat_owners',
        sa.Column('chat_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('owner', sa.String(length=32), nullable=False),
        sa.Column('until', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('chat_id', name=op.f('pk_chat_owners')),
    )
    op.create_index(op.f('ix_chat_owners_until'), 'chat_owners', ['until'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_chat_owners_until'), table_name='chat_owners')
    op.drop_table('chat_owners')
