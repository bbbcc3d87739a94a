"""report: outcome breakdown and connected time

The roll-ups gain the ``outcome`` dimension and a ``connected_seconds``
measure; each case keeps the sum of its TeamViewer connections in
``connected_seconds``, kept by new triggers on tvwidget_connections (see
tvwidget.reports.rollup).  The upgrade counts the connections already stored and
rolls every case up again.  The downgrade drops the columns with a plain
ALTER TABLE (SQLite 3.35+): batch mode would recreate the cases table, which
SQLite refuses while connections and comments refer to its rows, and then
installs and rebuilds the previous design.

Revision ID: 5e0c2a7d41b9
Revises: bbf919ce0700
Create Date: 2026-11-25 09:12:40.318442

"""
import sqlalchemy as sa
from alembic import op

from tvwidget.reports import rollup

# revision identifiers, used by Alembic.
revision = '5e0c2a7d41b9'
down_revision = 'bbf919ce0700'
branch_labels = None
depends_on = None

ROLLUP_TABLES = ('tvwidget_report_days', 'tvwidget_report_hours', 'tvwidget_report_technician_days',
                 'tvwidget_report_technician_hours')


def upgrade():
    with op.batch_alter_table('tvwidget_service_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connected_seconds', sa.BigInteger(), server_default='0', nullable=False))
    for table in ROLLUP_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('connected_seconds', sa.BigInteger(), server_default='0', nullable=False))

    rollup.install(op.get_bind(), rollup.WITH_OUTCOMES)
    rollup.rebuild(op.get_bind(), rollup.WITH_OUTCOMES)


def downgrade():
    rollup.uninstall(op.get_bind())  # a column named in a trigger cannot be dropped
    for table in ROLLUP_TABLES + ('tvwidget_service_cases',):
        op.execute(f'ALTER TABLE {table} DROP COLUMN connected_seconds')

    rollup.install(op.get_bind(), rollup.FIRST)
    rollup.rebuild(op.get_bind(), rollup.FIRST)
