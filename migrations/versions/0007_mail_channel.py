"""mail channel: customers' addresses and the mails of each ticket's thread

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot add a unique column in place: batch mode copies the table.
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        batch.create_unique_constraint(op.f('uq_users_email'), ['email'])
    op.create_table(
        'mail_messages',
        sa.Column('message_id', sa.String(length=512), nullable=False),
        sa.Column('ticket_number', sa.BigInteger(), nullable=True),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['ticket_number'],
            ['tickets.number'],
            name=op.f('fk_mail_messages_ticket_number_tickets'),
        ),
        sa.PrimaryKeyConstraint('message_id', name=op.f('pk_mail_messages')),
    )
    op.create_index(
        op.f('ix_mail_messages_ticket_number'), 'mail_messages', ['ticket_number'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_mail_messages_ticket_number'), table_name='mail_messages')
    op.drop_table('mail_messages')
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint(op.f('uq_users_email'), type_='unique')
        batch.drop_column('email')
