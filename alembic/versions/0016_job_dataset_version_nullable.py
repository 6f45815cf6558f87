"""job.dataset_version_id nullable: a batch run of uploaded weights over an uploaded zip

Revision ID: 0016
Revises: 0009
Create Date: 2026-12-01 22:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0016'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A zip of images is no dataset version, and uploaded weights have no training data to
    # stand as the run's lineage: such a batch job has none (the model's stays on its version).
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.alter_column('dataset_version_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # Jobs without a dataset version cannot be kept under NOT NULL, and deleting a user's jobs
    # (with their metrics, events and results) is not a downgrade's decision: refuse, saying so.
    orphans = op.get_bind().execute(
        sa.text('SELECT id FROM job WHERE dataset_version_id IS NULL ORDER BY id')
    ).scalars().all()
    if orphans:
        shown = ', '.join(str(i) for i in orphans[:20]) + (' ...' if len(orphans) > 20 else '')
        raise RuntimeError(
            f'cannot downgrade below 0016: {len(orphans)} job(s) have no dataset version '
            f'(batch runs of uploaded weights over a zip of images: {shown}); delete those jobs '
            'first, or stay on this revision'
        )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.alter_column('dataset_version_id', existing_type=sa.Integer(), nullable=False)
