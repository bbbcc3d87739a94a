"""agent directory: TeamViewer users by email, agents seen, the case's assignee

The downgrade drops the cases' new columns with a plain ALTER TABLE (SQLite
3.35+), as 5e0c2a7d41b9 does: batch mode would recreate the cases table and
lose the report's triggers.

Revision ID: i17_agent_directory
Revises: i18_worker_jobs
Create Date: 2026-12-03 10:22:00.612236

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'i17_agent_directory'
down_revision = 'i18_worker_jobs'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tvwidget_agents',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('override', sa.String(length=32), nullable=True),
    sa.Column('override_by_name', sa.String(length=200), nullable=True),
    sa.Column('override_at', sa.DateTime(), nullable=True),
    sa.Column('refused_userid', sa.String(length=32), nullable=True),
    sa.Column('refused_at', sa.DateTime(), nullable=True),
    sa.Column('refused_detail', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tvwidget_agents'))
    )
    op.create_table('tvwidget_directory_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('fetched_at', sa.DateTime(), nullable=True),
    sa.Column('attempted_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('remote_error', sa.String(length=64), nullable=True),
    sa.Column('retry_at', sa.DateTime(), nullable=True),
    sa.Column('user_count', sa.Integer(), nullable=False),
    sa.Column('group_name', sa.String(length=100), nullable=True),
    sa.Column('group_id', sa.String(length=32), nullable=True),
    sa.Column('group_shares', sa.Text(), nullable=True),
    sa.Column('group_checked_at', sa.DateTime(), nullable=True),
    sa.Column('group_error', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tvwidget_directory_state'))
    )
    op.create_table('tvwidget_directory_users',
    sa.Column('userid', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('email_key', sa.String(length=254), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('userid', name=op.f('pk_tvwidget_directory_users'))
    )
    with op.batch_alter_table('tvwidget_directory_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tvwidget_directory_users_email_key'), ['email_key'], unique=False)

    with op.batch_alter_table('tvwidget_service_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assigned_userid', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('assigned_name', sa.String(length=200), nullable=True))



def downgrade():
    op.execute('ALTER TABLE tvwidget_service_cases DROP COLUMN assigned_name')
    op.execute('ALTER TABLE tvwidget_service_cases DROP COLUMN assigned_userid')

    with op.batch_alter_table('tvwidget_directory_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tvwidget_directory_users_email_key'))

    op.drop_table('tvwidget_directory_users')
    op.drop_table('tvwidget_directory_state')
    op.drop_table('tvwidget_agents')
