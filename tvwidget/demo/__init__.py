"""The demo: a pretend helpdesk page, demo data and the TeamViewer sandbox.

Nothing in the product imports this package (import-linter checks it in
``make test``).  ``create_app()`` here is the product's app with the demo's
pages and commands added: ``make run`` serves it, with the sandbox beside it.
"""
from flask import Flask

import tvwidget

__all__ = ["create_app"]


def create_app(config: dict | None = None) -> Flask:
    """Return tvwidget's standalone app with the demo's pages (``TVWIDGET_ENV=demo``) and commands."""
    from tvwidget.demo import (
        seed,  # noqa: F401  (adds seed-demo to the group)
        views,
    )
    from tvwidget.demo.commands import demo_cli

    app = tvwidget.create_app(config)
    if app.extensions["tvwidget"].settings["ENV"] == "demo":
        app.register_blueprint(views.bp)
    # One `flask tvwidget` group: the product's commands and the demo's.
    for name, command in app.cli.commands["tvwidget"].commands.items():
        demo_cli.commands.setdefault(name, command)
    app.cli.add_command(demo_cli)
    return app
