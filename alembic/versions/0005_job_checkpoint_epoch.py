"""job checkpoint epoch

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 19:45:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: jobs from before have no stored-checkpoint epoch on record.
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkpoint_epoch', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('checkpoint_epoch')
