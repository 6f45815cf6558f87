"""project quotas

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing projects keep no limit (None = unlimited).
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_running_jobs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_queued_jobs', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('max_queued_jobs')
        batch_op.drop_column('max_running_jobs')
