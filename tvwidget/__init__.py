"""tvwidget: TeamViewer remote support inside a helpdesk ticket, as a Flask plugin.

``create_app()`` builds a standalone app; ``init_app(app)`` adds tvwidget to a
host's Flask app.  Both run the same code.
"""
from flask import Flask

from . import config as config_module
from .paths import asset_dir

__all__ = ["create_app", "init_app"]


def create_app(config: dict | None = None) -> Flask:
    """Return the standalone tvwidget application."""
    from .flaskapp import TVWidgetFlask
    from .security import headers

    app = TVWidgetFlask(__name__, instance_relative_config=True, static_folder=None,
                template_folder=asset_dir("templates"))
    _init(app, config, standalone=True)
    # What no blueprint answers (404 for an unknown path, 405) gets the strict headers too;
    # a host mounting tvwidget with init_app keeps its own pages to itself.
    strict = headers(frameable=False)
    app.after_request(lambda response: response if "Content-Security-Policy" in response.headers
                      else strict(response))
    return app


def init_app(app: Flask, config: dict | None = None) -> None:
    """Register tvwidget's configuration, extensions, blueprints and commands on a host's ``app``.

    The host's app-wide settings (session cookie, request size limits) stay the host's.
    """
    _init(app, config, standalone=False)


def _init(app: Flask, config: dict | None, standalone: bool) -> None:
    app.extensions["tvwidget_standalone"] = standalone
    defaults = config_module.defaults(app.instance_path)
    if standalone:
        defaults |= config_module.standalone_defaults()
    for key, value in defaults.items():
        # Fill what neither the host nor Flask's own defaults decided.
        if app.config.get(key, value) == app.default_config.get(key, value):
            app.config[key] = value
    config_module.load(app.config, config, standalone=standalone)
    from .security import log_refused_launch

    app.after_request(log_refused_launch)
    _register_extensions(app)
    _register_blueprints(app)
    _register_commands(app)


def _register_extensions(app: Flask) -> None:
    from flask_wtf.csrf import generate_csrf

    from . import database, i18n
    from .extensions import db, mail, migrate

    database.configure(app)
    db.init_app(app)
    database.attach(app)
    migrate.init_app(app, db, directory=asset_dir("migrations"))
    mail.init_app(app)
    # Flask-WTF's token for tvwidget's own forms; each view that needs it checks it
    # (security.check_csrf_token): CSRFProtect would guard a host's own routes too.
    app.add_template_global(generate_csrf, "csrf_token")
    i18n.init_app(app)


def _register_blueprints(app: Flask) -> None:
    from .views import admin, api, health, widget

    app.register_blueprint(widget.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    # A host app has its own /healthz: mounted there, tvwidget's is /embed/healthz.
    app.register_blueprint(health.bp, url_prefix=None if app.extensions["tvwidget_standalone"] else "/embed")
    if app.config["ENV"] == "demo":
        from .views import demo

        app.register_blueprint(demo.bp)


def _register_commands(app: Flask) -> None:
    from . import seed  # noqa: F401  (adds seed-demo to the group)
    from .cli import cli

    app.cli.add_command(cli)
