"""runs: tags, and the newest epoch's metrics on the job row (server-side filters and sorts)

Revision ID: 0015
Revises: 0008
Create Date: 2026-12-01 11:20:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0015'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('final_metrics', sa.JSON(), nullable=False, server_default='{}'))
    op.create_table(
        'jobtag',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('job.id'), nullable=False),
        sa.Column('tag', sa.String(length=40), nullable=False),
        sa.UniqueConstraint('job_id', 'tag'),
    )
    op.create_index('ix_jobtag_job_id', 'jobtag', ['job_id'])
    op.create_index('ix_jobtag_tag', 'jobtag', ['tag'])
    # Existing runs: their newest stored epoch becomes their final metrics.
    bind = op.get_bind()
    job = sa.table('job', sa.column('id', sa.Integer), sa.column('final_metrics', sa.JSON))
    metric = sa.table(
        'jobmetric', sa.column('job_id', sa.Integer), sa.column('epoch', sa.Integer), sa.column('metrics', sa.JSON)
    )
    newest = (
        sa.select(metric.c.job_id, sa.func.max(metric.c.epoch).label('epoch')).group_by(metric.c.job_id).subquery()
    )
    rows = bind.execute(
        sa.select(metric.c.job_id, metric.c.metrics).join(
            newest, sa.and_(metric.c.job_id == newest.c.job_id, metric.c.epoch == newest.c.epoch)
        )
    ).all()
    for job_id, metrics in rows:
        bind.execute(job.update().where(job.c.id == job_id).values(final_metrics=metrics or {}))


def downgrade() -> None:
    op.drop_index('ix_jobtag_tag', table_name='jobtag')
    op.drop_index('ix_jobtag_job_id', table_name='jobtag')
    op.drop_table('jobtag')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('final_metrics')
