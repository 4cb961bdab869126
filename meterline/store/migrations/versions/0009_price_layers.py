"""Price layers: every price version records its layer (operator, curated, genai-prices,
litellm), and a model may have versions of several layers and currencies starting at the same
moment; name rules of a price database (prefixes, regexes) are stored per layer, and the last
sync of each shipped source is remembered so a start need not translate it again.

Existing versions get the layer of their origin (``catalog`` → curated, ``import:litellm`` →
litellm, anything else → operator). Their ids are unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('price_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('layer', sa.String(16), nullable=False,
                                      server_default='operator'))
    op.execute("UPDATE price_versions SET layer = 'curated' WHERE origin = 'catalog'")
    op.execute("UPDATE price_versions SET layer = 'litellm' WHERE origin LIKE '%litellm'")
    with op.batch_alter_table('price_versions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_price_versions_model_id_effective_from', type_='unique')
        batch_op.create_unique_constraint(
            'uq_price_versions_model_id_effective_from_currency_layer',
            ['model_id', 'effective_from', 'currency', 'layer'])
    op.create_table(
        'model_rules',
        sa.Column('layer', sa.String(16), nullable=False),
        sa.Column('provider', sa.String(64), nullable=False),
        sa.Column('model_id', sa.String(200), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('rule', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('layer', 'provider', 'model_id', name=op.f('pk_model_rules')),
    )


    op.create_table(
        'catalog_syncs',
        sa.Column('layer', sa.String(16), nullable=False),
        sa.Column('fingerprint', sa.String(128), nullable=False),
        sa.Column('synced_at', meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('layer', name=op.f('pk_catalog_syncs')),
    )


def downgrade() -> None:
    op.drop_table('catalog_syncs')
    op.drop_table('model_rules')
    with op.batch_alter_table('price_versions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_price_versions_model_id_effective_from_currency_layer',
                                 type_='unique')
        batch_op.create_unique_constraint('uq_price_versions_model_id_effective_from',
                                          ['model_id', 'effective_from'])
        batch_op.drop_column('layer')
