"""Admin credentials: admin tokens get a name, a last use and a revocation time; dashboard
sessions are rows of their own (a hashed random id, an expiry, a revocation time) instead of a
cookie holding the admin token; the server keeps the key it signs session cookies with.

Existing admin tokens are named ``admin``; none is revoked.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('admin_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(64), nullable=False,
                                      server_default='admin'))
        batch_op.add_column(sa.Column('last_used_at',
                                      meterline.store.types.UtcDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('revoked_at',
                                      meterline.store.types.UtcDateTime(timezone=True),
                                      nullable=True))
    op.create_table(
        'sessions',
        sa.Column('id_hash', sa.String(64), nullable=False),
        sa.Column('admin_token_id', sa.Integer(), nullable=False),
        sa.Column('created_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=False),
        sa.Column('expires_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=False),
        sa.Column('revoked_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=True),
        sa.ForeignKeyConstraint(['admin_token_id'], ['admin_tokens.id'],
                                name=op.f('fk_sessions_admin_token_id_admin_tokens')),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_sessions')),
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_admin_token_id'), ['admin_token_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_sessions_expires_at'), ['expires_at'],
                              unique=False)
    op.create_table(
        'server_secrets',
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('value', sa.String(128), nullable=False),
        sa.Column('created_at', meterline.store.types.UtcDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_server_secrets')),
    )


def downgrade() -> None:
    op.drop_table('server_secrets')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_expires_at'))
        batch_op.drop_index(batch_op.f('ix_sessions_admin_token_id'))
    op.drop_table('sessions')
    with op.batch_alter_table('admin_tokens', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('name')
