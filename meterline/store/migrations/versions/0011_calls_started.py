"""Calls in flight: a gateway call that reached the provider is journaled as started before the
upstream is called; the row it leaves here becomes an ``interrupted`` usage record if its
process dies before the call is recorded (gateway/inflight.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calls_started',
        sa.Column('request_id', sa.String(40), nullable=False),
        sa.Column('writer', sa.String(64), nullable=False),
        sa.Column('tenant_id', sa.String(64), nullable=False),
        sa.Column('started_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=False),
        sa.Column('record', meterline.store.types.Json(), nullable=False),
        sa.PrimaryKeyConstraint('request_id', name=op.f('pk_calls_started')),
    )
    with op.batch_alter_table('calls_started', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calls_started_writer'), ['writer'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calls_started', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_started_writer'))
    op.drop_table('calls_started')
