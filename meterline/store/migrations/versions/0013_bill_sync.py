"""Bill syncs: each provider bill line keeps the provider's rows it sums (``raw``); every sync
of a provider account is recorded (``sync_runs``, which also claims a scheduled day's sync for
one process) and the balances it read are kept (``provider_balances``); alerts may belong to a
provider account (``source``: low balances, bill differences) rather than to a budget.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-11 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False,
                     autoincrement=True)


def upgrade() -> None:
    with op.batch_alter_table('provider_bill_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw', meterline.store.types.Json(), nullable=True))
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(200), nullable=True))
        batch_op.create_index('uq_alerts_source', ['source', 'period_start', 'kind',
                                                   'threshold'], unique=True)
    op.create_table(
        'sync_runs',
        _id(),
        sa.Column('provider', sa.String(32), nullable=False),
        sa.Column('account', sa.String(64), nullable=False),
        sa.Column('cycle', sa.String(7), nullable=False),
        sa.Column('day', sa.Date(), nullable=True),
        sa.Column('trigger', sa.String(16), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('started_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=False),
        sa.Column('finished_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=True),
        sa.Column('lines', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('progress', meterline.store.types.Json(), nullable=True),
        sa.Column('summary', meterline.store.types.Json(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs')),
        sa.UniqueConstraint('provider', 'account', 'cycle', 'day', 'trigger',
                            name=op.f('uq_sync_runs_provider_account_cycle_day_trigger')),
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_runs_started_at'), ['started_at'],
                              unique=False)
    op.create_table(
        'provider_balances',
        _id(),
        sa.Column('provider', sa.String(32), nullable=False),
        sa.Column('account', sa.String(64), nullable=False),
        sa.Column('at', meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('amount', meterline.store.types.Money(), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_balances')),
    )
    with op.batch_alter_table('provider_balances', schema=None) as batch_op:
        batch_op.create_index('ix_provider_balances_account_at', ['provider', 'account', 'at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('provider_balances', schema=None) as batch_op:
        batch_op.drop_index('ix_provider_balances_account_at')
    op.drop_table('provider_balances')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_runs_started_at'))
    op.drop_table('sync_runs')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_alerts_source')
        batch_op.drop_column('source')
    with op.batch_alter_table('provider_bill_lines', schema=None) as batch_op:
        batch_op.drop_column('raw')
