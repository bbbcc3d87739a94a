"""Alembic environment for tvwidget's tables only.

tvwidget may share a database with its host, so it keeps its own version
table and never looks at tables without the ``tvwidget_`` prefix.
"""
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

VERSION_TABLE = "tvwidget_alembic_version"

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db


def include_object(obj, name, type_, reflected, compare_to):
    """Leave the host's tables (anything not prefixed ``tvwidget_``) alone."""
    if type_ == "table":
        return name.startswith("tvwidget_")
    return True


def _skip_empty_revisions(context_, revision, directives):
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_online() -> None:
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            version_table=VERSION_TABLE,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            process_revision_directives=_skip_empty_revisions,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=db.engine.url.render_as_string(hide_password=False),
        target_metadata=db.metadata, version_table=VERSION_TABLE,
        include_object=include_object, literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
