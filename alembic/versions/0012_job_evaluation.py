"""evaluation: a job's best.pt validation and test metrics, their splits, the predictions cap

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-01 11:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs from before have no stored best.pt figures (`{}`) and stored no predictions; 500 is
    # the cap a new job gets by default.
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('val_metrics', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('test_metrics', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('metric_splits', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(
            sa.Column('predictions_max_images', sa.Integer(), nullable=False, server_default='500')
        )


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('predictions_max_images')
        batch_op.drop_column('metric_splits')
        batch_op.drop_column('test_metrics')
        batch_op.drop_column('val_metrics')
