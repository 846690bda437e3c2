"""problems and their incidents: the problem a ticket is linked to

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _last_number() -> int | None:
    """SQLite's AUTOINCREMENT counter of tickets: batch mode copies the table, and the copy's
    counter starts from the highest number left, which would give a deleted ticket's number
    again."""
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
    last = _last_number()
    # SQLite cannot add a foreign key in place: batch mode copies the table (keeping its
    # AUTOINCREMENT and its counter: a ticket number is never reused).
    with op.batch_alter_table('tickets', table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.add_column(sa.Column('problem_number', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('problem_told_at', sa.DateTime(), nullable=True))
        batch.create_foreign_key(
            'fk_tickets_problem_number_tickets', 'tickets', ['problem_number'], ['number']
        )
        batch.create_index('ix_tickets_problem', ['problem_number', 'status'], unique=False)
    _keep_last_number(last)


def downgrade() -> None:
    last = _last_number()
    with op.batch_alter_table('tickets', table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.drop_index('ix_tickets_problem')
        batch.drop_constraint('fk_tickets_problem_number_tickets', type_='foreignkey')
        batch.drop_column('problem_told_at')
        batch.drop_column('problem_number')
    _keep_last_number(last)
