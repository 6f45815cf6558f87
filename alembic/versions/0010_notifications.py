"""notifications: project rules, the event outbox, the delivery log, users' in-app list and switch

Revision ID: 0010
Revises: 0015
Create Date: 2026-12-01 11:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_own_jobs', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        'notificationrule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('target', sa.String(length=2000), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['created_by'], ['user.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_notificationrule_project_id', 'notificationrule', ['project_id'])
    op.create_table(
        'notificationevent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('subject', sa.String(length=64), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('rule_id', sa.Integer(), nullable=True),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('body', sa.String(length=2000), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('fanned_out_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['owner_id'], ['user.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.ForeignKeyConstraint(['rule_id'], ['notificationrule.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_notificationevent_project_id', 'notificationevent', ['project_id'])
    op.create_index('ix_notificationevent_created_at', 'notificationevent', ['created_at'])
    op.create_index('ix_notificationevent_fanned_out_at', 'notificationevent', ['fanned_out_at'])
    op.create_table(
        'notificationdelivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=True),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('target', sa.String(length=300), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('detail', sa.String(length=500), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['notificationevent.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.ForeignKeyConstraint(['rule_id'], ['notificationrule.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_notificationdelivery_project_id', 'notificationdelivery', ['project_id'])
    op.create_index('ix_notificationdelivery_event_id', 'notificationdelivery', ['event_id'])
    op.create_index('ix_notificationdelivery_created_at', 'notificationdelivery', ['created_at'])
    op.create_table(
        'usernotification',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('link', sa.String(length=300), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('read_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.ForeignKeyConstraint(['user_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_usernotification_user_id', 'usernotification', ['user_id'])
    op.create_index('ix_usernotification_created_at', 'usernotification', ['created_at'])


def downgrade() -> None:
    op.drop_table('usernotification')
    op.drop_table('notificationdelivery')
    op.drop_table('notificationevent')
    op.drop_table('notificationrule')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('notify_own_jobs')
