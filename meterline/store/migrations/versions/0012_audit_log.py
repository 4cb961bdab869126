"""The audit log: one row per admin action (bills issued, paid or voided, keys, prices, FX
rates, budgets, quotas, plans, tenants, admin tokens, refunds…) through the admin API or the
CLI, with who did it (store/audit.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False,
                  autoincrement=True),
        sa.Column('at', meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(80), nullable=False),
        sa.Column('action', sa.String(64), nullable=False),
        sa.Column('tenant_id', sa.String(64), nullable=True),
        sa.Column('target', sa.Text(), nullable=True),
        sa.Column('details', meterline.store.types.Json(), nullable=False),
        sa.Column('request_id', sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
    op.drop_table('audit_log')
