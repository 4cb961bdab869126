"""cache_write_1h_tokens: the part of a call's cache writes kept for an hour (Anthropic prices
them higher than five-minute writes), on usage records, archived records and the daily rollup.
Existing rows get 0: their writes were all counted, and priced, as cache_write_tokens.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TABLES = ('usage_records', 'usage_records_archive', 'usage_daily')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('cache_write_1h_tokens', sa.BigInteger(),
                                          nullable=False, server_default='0'))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('cache_write_1h_tokens')
