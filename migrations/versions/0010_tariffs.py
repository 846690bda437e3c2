"""tariffs: organisations, customer accounts, and the tariff a ticket was registered under

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _last_number() -> int | None:
    """SQLite's AUTOINCREMENT counter of tickets: a batch copy of the table (the downgrade's
    drop of a column) starts its counter from the highest number left."""
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return None
    return bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'tickets'").scalar()


def _keep_last_number(last: int | None) -> None:
    if last is not None:
        op.get_bind().exec_driver_sql(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'tickets'", (last,)
        )


def upgrade() -> None:
    op.create_table(
        'organisations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=256), nullable=False),
        sa.Column('tariff', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_organisations')),
        sa.UniqueConstraint('name', name=op.f('uq_organisations_name')),
    )
    op.create_table(
        'accounts',
        sa.Column('number', sa.String(length=64), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['organisation_id'],
            ['organisations.id'],
            name=op.f('fk_accounts_organisation_id_organisations'),
        ),
        sa.PrimaryKeyConstraint('number', name=op.f('pk_accounts')),
    )
    op.create_index(
        op.f('ix_accounts_organisation_id'), 'accounts', ['organisation_id'], unique=False
    )
    # A plain nullable column: SQLite adds it in place (no copy of the table). Tickets
    # registered before tariffs existed keep NULL, read as the default tariff.
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('tariff', sa.String(length=64), nullable=True))


def downgrade() -> None:
    last = _last_number()
    with op.batch_alter_table('tickets', table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.drop_column('tariff')
    _keep_last_number(last)
    op.drop_index(op.f('ix_accounts_organisation_id'), table_name='accounts')
    op.drop_table('accounts')
    op.drop_table('organisations')
