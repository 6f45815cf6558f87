"""fleet: job resources and waiting reason, project GPU quota and priority

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 08:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs from before asked for nothing in particular: `{}` is one CPU slot, as they ran.
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resources', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('waiting_for', sa.String(length=200), nullable=True))
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_gpus', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('priority')
        batch_op.drop_column('max_gpus')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('waiting_for')
        batch_op.drop_column('resources')
