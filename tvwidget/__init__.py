"""tvwidget: TeamViewer remote support inside a helpdesk ticket, as a Flask plugin.

``create_app()`` builds a standalone app; ``init_app(app)`` adds tvwidget to a
host's Flask app.  Both run the same code.
"""
from flask import Flask

from tvwidget import config as config_module
from tvwidget.paths import asset_dir

__all__ = ["create_app", "init_app"]


def create_app(config: dict | None = None) -> Flask:
    """Return the standalone tvwidget application."""
    from tvwidget.web.security import headers

    app = Flask(__name__, instance_relative_config=True, static_folder=None, template_folder=asset_dir("templates"))
    _init(app, config, standalone=True)
    # What no blueprint answers (404 for an unknown path, 405) gets the strict headers too;
    # a host mounting tvwidget with init_app keeps its own pages to itself.
    strict = headers(frameable=False)
    app.after_request(lambda response: response if "Content-Security-Policy" in response.headers
                      else strict(response))
    return app


def init_app(app: Flask, config: dict | None = None) -> None:
    """Register tvwidget's settings, extensions, blueprints and commands on a host's ``app``.

    tvwidget's settings (``TVWIDGET_*`` variables, ``TVWIDGET_*`` keys of the host's
    config, then ``config``) live on ``app.extensions["tvwidget"]``: the host's config,
    secret key, session, Jinja environment and app-wide hooks stay the host's.
    """
    _refuse_shared_extensions(app)
    _init(app, config, standalone=False)


# Extensions that keep one instance per app: tvwidget's would replace the host's (or fail).
SHARED_EXTENSIONS = {"sqlalchemy": "Flask-SQLAlchemy", "migrate": "Flask-Migrate", "babel": "Flask-Babel"}


def _refuse_shared_extensions(app: Flask) -> None:
    taken = [name for key, name in SHARED_EXTENSIONS.items() if key in app.extensions]
    if taken:
        raise config_module.ConfigError(
            f"tvwidget cannot be mounted with init_app: this app already has its own {' and '.join(taken)}, "
            "and Flask allows one per app. Run tvwidget as its own service (iframe), or mount "
            "tvwidget.create_app() with werkzeug's DispatcherMiddleware.")


def _init(app: Flask, config: dict | None, standalone: bool) -> None:
    settings = (config_module.standalone_settings if standalone else config_module.host_settings)(app, config)
    app.extensions["tvwidget"] = config_module.State(settings, standalone)
    app.extensions["tvwidget_standalone"] = standalone
    _register_extensions(app)
    _register_blueprints(app)
    _register_commands(app)


def _register_extensions(app: Flask) -> None:
    from tvwidget import i18n
    from tvwidget.extensions import db, mail, migrate
    from tvwidget.reports import rollup  # noqa: F401  (its triggers are created with their tables)
    from tvwidget.storage import database
    from tvwidget.web import admin_entry

    state = app.extensions["tvwidget"]
    database.configure(state.settings, app.instance_path)
    if state.standalone:
        db.init_app(app)
        state.mail = mail.init_app(app)
        state.jinja_env = app.jinja_env
    else:
        # Flask-SQLAlchemy reads its settings from app.config, once: it gets tvwidget's, the host keeps its own.
        with config_module.lent(app.config, database.flask_sqlalchemy_settings(state.settings)):
            db.init_app(app)
        state.mail = mail.init_mail(state.settings, app.debug, app.testing)
        # Flask-Mail's Message looks there while it builds a message; tvwidget sends with its own state.
        app.extensions.setdefault("mail", state.mail)
        state.jinja_env = i18n.host_environment(app)
    database.attach(app)
    migrate.init_app(app, db, directory=asset_dir("migrations"))
    i18n.init_app(app, state)
    # The token for tvwidget's own forms (Flask-WTF's in the standalone app, the admin entry's in a host app);
    # each view that needs it checks it (security.check_csrf_token): CSRFProtect would guard a host's routes too.
    state.jinja_env.globals["csrf_token"] = admin_entry.csrf_token


def _register_blueprints(app: Flask) -> None:
    from tvwidget.web import admin, api, health, widget

    state = app.extensions["tvwidget"]
    app.register_blueprint(widget.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    # A host app has its own /healthz: mounted there, tvwidget's is /embed/healthz.
    app.register_blueprint(health.bp, url_prefix=None if state.standalone else "/embed")


def _register_commands(app: Flask) -> None:
    from tvwidget.ops.cli import cli

    app.cli.add_command(cli)
