"""model registry: registered models, versions with lineage, aliases; a job's start point

Revision ID: 0011
Revises: 0012 (main chains 0008 -> 0015 -> 0010 -> 0012)
Create Date: 2026-12-01 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0011"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registeredmodel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("mlflow_name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["user.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mlflow_name"),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_index("ix_registeredmodel_project_id", "registeredmodel", ["project_id"])
    op.create_table(
        "modelversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("weights_uri", sa.String(length=1024), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=False),
        sa.Column("framework", sa.String(length=32), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("architecture", sa.String(length=120), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("imgsz", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("val_metrics", sa.JSON(), nullable=False),
        sa.Column("test_metrics", sa.JSON(), nullable=False),
        sa.Column("exports", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("registered_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registeredmodel.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["dataset_version_id"], ["datasetversion.id"]),
        sa.ForeignKeyConstraint(["registered_by"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "version"),
    )
    op.create_index("ix_modelversion_model_id", "modelversion", ["model_id"])
    op.create_index("ix_modelversion_job_id", "modelversion", ["job_id"])
    op.create_table(
        "modelalias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registeredmodel.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["modelversion.id"]),
        sa.ForeignKeyConstraint(["updated_by"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "alias"),
    )
    op.create_index("ix_modelalias_model_id", "modelalias", ["model_id"])
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("init_weights", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("start_from", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("start_from")
        batch_op.drop_column("init_weights")
    op.drop_index("ix_modelalias_model_id", table_name="modelalias")
    op.drop_table("modelalias")
    op.drop_index("ix_modelversion_job_id", table_name="modelversion")
    op.drop_index("ix_modelversion_model_id", table_name="modelversion")
    op.drop_table("modelversion")
    op.drop_index("ix_registeredmodel_project_id", table_name="registeredmodel")
    op.drop_table("registeredmodel")
