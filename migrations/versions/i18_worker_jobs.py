"""worker: the periodic jobs' shared schedule and last runs

Revision ID: i18_worker_jobs
Revises: 5e0c2a7d41b9
Create Date: 2026-12-03 10:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'i18_worker_jobs'
down_revision = '5e0c2a7d41b9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'tvwidget_worker_jobs',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('next_run_at', sa.DateTime(), nullable=True),
        sa.Column('last_started_at', sa.DateTime(), nullable=True),
        sa.Column('last_finished_at', sa.DateTime(), nullable=True),
        sa.Column('last_ok_at', sa.DateTime(), nullable=True),
        sa.Column('last_outcome', sa.String(length=200), nullable=True),
        sa.Column('last_counts', sa.String(length=500), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_tvwidget_worker_jobs')),
    )


def downgrade():
    op.drop_table('tvwidget_worker_jobs')
