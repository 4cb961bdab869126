"""Batch API objects created through the gateway: uploaded batch files and batches (OpenAI and
Anthropic), their tenant, key and provider (only their tenant reaches them by id), and the
billing of each batch's results once it ends.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'batch_files',
        sa.Column('file_id', sa.String(200), nullable=False),
        sa.Column('tenant_id', sa.String(64), nullable=False),
        sa.Column('key_id', sa.String(32), nullable=False),
        sa.Column('user_id', sa.String(128), nullable=True),
        sa.Column('provider', sa.String(64), nullable=False),
        sa.Column('purpose', sa.String(32), nullable=False),
        sa.Column('created_at', meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('lines', meterline.store.types.Json(), nullable=True),
        sa.PrimaryKeyConstraint('file_id', name=op.f('pk_batch_files')),
    )
    op.create_table(
        'batches',
        sa.Column('batch_id', sa.String(200), nullable=False),
        sa.Column('api', sa.String(16), nullable=False),
        sa.Column('tenant_id', sa.String(64), nullable=False),
        sa.Column('key_id', sa.String(32), nullable=False),
        sa.Column('user_id', sa.String(128), nullable=True),
        sa.Column('provider', sa.String(64), nullable=False),
        sa.Column('input_file_id', sa.String(200), nullable=True),
        sa.Column('created_at', meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('pending', meterline.store.types.Json(), nullable=False),
        sa.Column('claimed_until', meterline.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column('billed_at', meterline.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column('billed_lines', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('batch_id', name=op.f('pk_batches')),
    )
    op.create_index('ix_batches_tenant', 'batches',
                    ['tenant_id', 'api', 'created_at', 'batch_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_batches_tenant', table_name='batches')
    op.drop_table('batches')
    op.drop_table('batch_files')
