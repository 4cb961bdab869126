"""Responses API objects created through the gateway: their tenant, key and provider (only
their tenant reaches them by id), and the call a background response bills when it completes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'upstream_responses',
        sa.Column('response_id', sa.String(200), nullable=False),
        sa.Column('tenant_id', sa.String(64), nullable=False),
        sa.Column('key_id', sa.String(32), nullable=False),
        sa.Column('user_id', sa.String(128), nullable=True),
        sa.Column('provider', sa.String(64), nullable=False),
        sa.Column('request_id', sa.String(40), nullable=False),
        sa.Column('created_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=False),
        sa.Column('pending', meterline.store.types.Json(), nullable=True),
        sa.Column('billed_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=True),
        sa.PrimaryKeyConstraint('response_id', name=op.f('pk_upstream_responses')),
    )


def downgrade() -> None:
    op.drop_table('upstream_responses')
