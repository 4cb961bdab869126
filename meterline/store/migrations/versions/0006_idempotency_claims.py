"""idempotency_claims: the gateway's Idempotency-Key claims, one per tenant and key, so two
processes receiving the same key cannot both call the provider (see store/claims.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_claims',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=150), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('expires_at', meterline.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'key', name=op.f('pk_idempotency_claims'))
    )
    with op.batch_alter_table('idempotency_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_claims_expires_at'), ['expires_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotency_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_claims_expires_at'))
    op.drop_table('idempotency_claims')
