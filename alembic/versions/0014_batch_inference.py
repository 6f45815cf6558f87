"""batch inference: a job's kind and its inference request

Revision ID: 0014
Revises: 0015 (main's 0015 came first; chained here after merging main)
Create Date: 2026-12-01 11:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0014'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every job before this one trained: kind 'train', no inference request.
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=24), nullable=False, server_default='train'))
        batch_op.add_column(sa.Column('inference', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('inference')
        batch_op.drop_column('kind')
