"""saved comparisons

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:35:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'savedcomparison',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column('job_ids', sa.JSON(), nullable=False),
        sa.Column('metric', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column('only_differences', sa.Boolean(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['created_by'], ['user.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('savedcomparison', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_savedcomparison_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('savedcomparison', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_savedcomparison_project_id'))
    op.drop_table('savedcomparison')
