"""sweeps: the sweep table, trial columns on jobs, and Optuna's study tables

Revision ID: 0009
Revises: 0012
Create Date: 2026-12-01 11:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sweep',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('dataset_version_id', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('framework', sa.String(length=32), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=120), nullable=False),
        sa.Column('device', sa.String(length=16), nullable=False),
        sa.Column('resources', sa.JSON(), nullable=False),
        sa.Column('search_space', sa.JSON(), nullable=False),
        sa.Column('objective', sa.String(length=64), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('n_trials', sa.Integer(), nullable=False),
        sa.Column('parallelism', sa.Integer(), nullable=False),
        sa.Column('sampler', sa.String(length=16), nullable=False),
        sa.Column('pruner', sa.String(length=16), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('study_name', sa.String(length=120), nullable=False),
        sa.Column('mlflow_run_id', sa.String(length=64), nullable=True),
        sa.Column('message', sa.String(length=500), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['created_by'], ['user.id']),
        sa.ForeignKeyConstraint(['dataset_version_id'], ['datasetversion.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_sweep_project_id'), 'sweep', ['project_id'], unique=False)
    op.create_index(op.f('ix_sweep_state'), 'sweep', ['state'], unique=False)
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sweep_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sweep_trial', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pruned_epoch', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_job_sweep_id'), ['sweep_id'], unique=False)
        batch_op.create_foreign_key('fk_job_sweep_id', 'sweep', ['sweep_id'], ['id'])
    # Optuna's RDB storage keeps each sweep's study (trials, values, intermediate values) in its
    # own tables. They are made here, so `vtp migrate` is the one step that prepares a database;
    # services.domain.sweeps opens the storage without letting Optuna touch `alembic_version`.
    from optuna.storages._rdb import models as optuna_tables

    optuna_tables.BaseModel.metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_constraint('fk_job_sweep_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_job_sweep_id'))
        batch_op.drop_column('pruned_epoch')
        batch_op.drop_column('sweep_trial')
        batch_op.drop_column('sweep_id')
    op.drop_index(op.f('ix_sweep_state'), table_name='sweep')
    op.drop_index(op.f('ix_sweep_project_id'), table_name='sweep')
    op.drop_table('sweep')
    # Optuna's tables stay: they may hold studies of other tools sharing this database.
