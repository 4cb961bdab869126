"""provider_bill_lines: what providers billed per model and charge period, imported from their
bill files (`meterline sync --file`), the other side of `meterline reconcile`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('provider_bill_lines',
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', meterline.store.types.Money(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('imported_at', meterline.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'model', 'period_start', 'period_end', 'currency',
                            name=op.f('pk_provider_bill_lines'))
    )


def downgrade() -> None:
    op.drop_table('provider_bill_lines')
