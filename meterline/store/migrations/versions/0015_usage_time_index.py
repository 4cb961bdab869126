"""Usage records by time across every tenant: the dashboard's usage explorer pages through them
newest first (keyset on time and request id) with no tenant filter, which the tenant-first index
cannot serve without sorting the whole table.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_usage_records_time', 'usage_records', ['occurred_at', 'request_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_usage_records_time', table_name='usage_records')
