"""Configuration: defaults, ``TVWIDGET_*`` environment variables and start-up checks."""
import base64
import contextlib
import dataclasses
import hashlib
import os
import re
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from flask import Config, current_app

ENVIRONMENTS = ("production", "development", "demo")
REAL_TEAMVIEWER_API = "https://webapi.teamviewer.com/api/v1"

# Settings that hold text even when their value happens to parse as JSON
# (``from_prefixed_env`` would turn an all-digit API key into an int).
TEXT_SETTINGS = (
    "ENV", "SECRET_KEY", "EMBED_SECRET", "HOST_API_KEY", "ENCRYPTION_KEYS",
    "FRAME_ANCESTORS", "COMPANY_NAME", "DEFAULT_LOCALE", "TEAMVIEWER_API_URL",
    "MAIL_USERNAME", "MAIL_PASSWORD", "HOST_WEBHOOK_URL",
)


HOST_COOKIE_NAME = "__Host-tvwidget_admin"
MAX_REQUEST_BYTES = 64 * 1024  # tvwidget's forms, tokens and JSON bodies are far smaller


PREFIX = "TVWIDGET_"
_MISSING = object()


def setting(name: str, default=_MISSING):
    """Return tvwidget's setting ``name`` (e.g. ``"EMBED_SECRET"``) for the current app.

    The one place tvwidget's own code reads its settings, whichever app it is mounted in:
    the standalone app's config, or tvwidget's own settings on ``app.extensions["tvwidget"]``
    in a host app (whose config keeps only the host's keys and ``TVWIDGET_*`` ones).
    """
    if default is _MISSING:
        return settings()[name]
    return settings().get(name, default)


def settings():
    """Return all of tvwidget's settings for the current app (a mapping; see ``setting``)."""
    return current_app.extensions["tvwidget"].settings


def standalone() -> bool:
    """Return whether the current app is tvwidget's own (``create_app``) rather than a host's."""
    return current_app.extensions["tvwidget"].standalone


@dataclasses.dataclass
class State:
    """What tvwidget keeps on ``app.extensions["tvwidget"]``.

    ``settings`` is the standalone app's own config, or in a host app a separate
    ``flask.Config``; ``mail`` is the Flask-Mail state tvwidget sends with;
    ``jinja_env`` the Jinja environment tvwidget renders its templates in.
    """

    settings: Config
    standalone: bool
    mail: object = None
    jinja_env: object = None


def standalone_settings(app, overrides: dict | None) -> Config:
    """Fill and check the standalone app's config, which is tvwidget's settings object there."""
    filled = defaults(app.instance_path) | standalone_defaults()
    for key, value in filled.items():
        # Fill what neither the caller nor Flask's own defaults decided.
        if app.config.get(key, value) == app.default_config.get(key, value):
            app.config[key] = value
    load(app.config, overrides, standalone=True)
    return app.config


def host_settings(app, overrides: dict | None) -> Config:
    """Return tvwidget's own settings for a host ``app``, leaving the host's config as it is.

    Lowest to highest: tvwidget's defaults, ``TVWIDGET_*`` environment variables,
    ``TVWIDGET_*`` keys in the host's config, and the mapping passed to ``init_app``
    (unprefixed keys, as before).
    """
    settings = Config(app.root_path, defaults(app.instance_path))
    prefixed = {key.removeprefix(PREFIX): value for key, value in app.config.items() if key.startswith(PREFIX)}
    load(settings, prefixed | (overrides or {}), standalone=False)
    return settings


@contextlib.contextmanager
def lent(config, values: dict):
    """Show ``values`` in a host's ``config`` while an extension's ``init_app`` reads them, then restore it.

    For Flask-SQLAlchemy and Flask-Babel, which read their settings from
    ``app.config`` once, in ``init_app`` (Flask-SQLAlchemy: "changes to application
    config after this call will not be reflected").  Afterwards the host's config
    holds exactly what it held before, including keys the extension set by default.
    """
    before = dict(config)
    config.update(values)
    try:
        yield
    finally:
        for key in [key for key in config if key not in before]:
            del config[key]
        config.update((key, value) for key, value in before.items() if config.get(key, _MISSING) is not value)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


def _dev_secret(purpose: str) -> str:
    # Fixed, public development values: only ever used outside production.
    return hashlib.sha256(f"tvwidget-development-{purpose}".encode()).hexdigest()


def _dev_fernet_key() -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(b"tvwidget-development-fernet").digest()).decode()


def defaults(instance_path: str) -> dict:
    """Return the settings used when neither the host nor the environment gives one."""
    return {
        "ENV": "production",
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(instance_path, "tvwidget.db"),
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "TEAMVIEWER_API_URL": REAL_TEAMVIEWER_API,
        # About 10 s in all: create (never retried) <= 6 s; a GET/PUT with its
        # one retry <= 2 x 6 s plus back-off.
        "TEAMVIEWER_CONNECT_TIMEOUT": 2.0,
        "TEAMVIEWER_READ_TIMEOUT": 4.0,
        "TEAMVIEWER_RETRIES": 1,
        # The company directory (agent -> TeamViewer user) is fetched at most once per this many seconds.
        "DIRECTORY_REFRESH_SECONDS": 300,
        # An open widget polls its case's status this often; one TeamViewer answer serves every poller
        # of a case this long; after a rate limit or an outage the next question waits this long.
        "STATUS_POLL_SECONDS": 15,
        "STATUS_CACHE_SECONDS": 15,
        "STATUS_BACKOFF_SECONDS": 60,
        # Where service_case.* events are POSTed (docs/host-contract.md); None: no webhook.
        "HOST_WEBHOOK_URL": None,
        "FRAME_ANCESTORS": "",
        "COMPANY_NAME": "Helpdesk",
        "DEFAULT_LOCALE": "en",
        "WIDGET_CREDENTIAL_MAX_AGE": 3600,
        "LAUNCH_TOKEN_LEEWAY": 10,
        "MAIL_DEFAULT_SENDER": None,
        # Flask-Mail would suppress sending whenever TESTING is on; tvwidget decides explicitly.
        "MAIL_SUPPRESS_SEND": False,
        "SMTP_TIMEOUT": 10,
        "BABEL_TRANSLATION_DIRECTORIES": "translations",
        "WTF_CSRF_ENABLED": True,
        "WTF_CSRF_FIELD_NAME": "csrf_token",
        "WTF_CSRF_HEADERS": ["X-CSRFToken", "X-CSRF-Token"],
        "WTF_CSRF_TIME_LIMIT": None,
        # Seconds between runs of each ``tvwidget worker`` job, overriding its default,
        # e.g. TVWIDGET_WORKER_INTERVALS='{"outbox": 5, "reconcile": 600}'.
        "WORKER_INTERVALS": {},
    }


def standalone_defaults() -> dict:
    """Return Flask's app-wide settings tvwidget picks when it is the whole app (``create_app``).

    They govern every page and the one session cookie of an app, so a host
    app that mounts tvwidget with ``init_app`` keeps its own: tvwidget caps
    its own requests itself (``security.limit_request_size``) and times out
    its admin entry in the session itself (``views.admin``).
    """
    return {
        "MAX_CONTENT_LENGTH": MAX_REQUEST_BYTES,
        "MAX_FORM_MEMORY_SIZE": MAX_REQUEST_BYTES,
        # The admin area's first-party session (the widget sets no cookie). ``__Host-``
        # makes browsers insist on Secure, Path=/ and no Domain (docs/reliability-checklist.md, cookies).
        "SESSION_COOKIE_NAME": HOST_COOKIE_NAME,
        "SESSION_COOKIE_PATH": "/",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
    }


def development_values() -> dict:
    """Return the secrets a development or demo run uses when none are set."""
    return {
        "SECRET_KEY": _dev_secret("secret-key"),
        "EMBED_SECRET": _dev_secret("embed-secret"),
        "HOST_API_KEY": _dev_secret("host-api-key"),
        "ENCRYPTION_KEYS": _dev_fernet_key(),
        "FRAME_ANCESTORS": "'self' http://localhost:* http://127.0.0.1:*",
        "MAIL_DEFAULT_SENDER": "tvwidget@localhost",
    }


def load(config, overrides: dict | None = None, *, standalone: bool) -> None:
    """Apply ``TVWIDGET_*`` variables and ``overrides``, fill development defaults, then check.

    ``standalone``: tvwidget is the whole app (``create_app``), so its session cookie settings apply.
    """
    config.from_prefixed_env("TVWIDGET")
    config.update(overrides or {})
    for key in TEXT_SETTINGS:
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            config[key] = os.environ.get(f"TVWIDGET_{key}", str(value))
    env = config.get("ENV")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"TVWIDGET_ENV must be one of {', '.join(ENVIRONMENTS)} (got {env!r}).")
    if env != "production":
        for key, value in development_values().items():
            if not config.get(key):
                config[key] = value
    if env == "demo":
        # The demo has no mail server: invitations are built, stored and shown on its outbox page.
        config["MAIL_SUPPRESS_SEND"] = True
    elif standalone:
        config["SESSION_COOKIE_SECURE"] = True
    if config.get("SESSION_COOKIE_NAME") == HOST_COOKIE_NAME and (
            env == "demo" or config.get("SESSION_COOKIE_DOMAIN") or config.get("SESSION_COOKIE_PATH") != "/"):
        # Browsers drop a __Host- cookie that is not Secure (the demo serves plain HTTP) or that
        # names a domain or a narrower path (a host app's choice): keep the plain name there.
        config["SESSION_COOKIE_NAME"] = HOST_COOKIE_NAME.removeprefix("__Host-")
    check(config)


def _require(config, key: str, problems: list, min_length: int = 1) -> str:
    value = config.get(key) or ""
    if not value:
        problems.append(f"TVWIDGET_{key} is missing.")
    elif len(value) < min_length:
        problems.append(f"TVWIDGET_{key} must be at least {min_length} characters long.")
    return value


_ORIGIN_RE = re.compile(r"^(https?://[A-Za-z0-9.*-]+(:(\d{1,5}|\*))?|'self')$")
ORIGIN_RE = _ORIGIN_RE  # a well-formed TVWIDGET_FRAME_ANCESTORS entry (tvwidget doctor checks each)


def check(config) -> None:
    """Raise ConfigError naming every missing or malformed setting."""
    problems: list[str] = []
    _require(config, "SECRET_KEY", problems, 32)
    _require(config, "EMBED_SECRET", problems, 32)
    _require(config, "HOST_API_KEY", problems, 24)
    keys = _require(config, "ENCRYPTION_KEYS", problems)
    for position, key in enumerate(k.strip() for k in keys.split(",") if k.strip()):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(f"TVWIDGET_ENCRYPTION_KEYS: key {position + 1} is not a valid Fernet key "
                            "(make one with: python -c 'from cryptography.fernet import Fernet; "
                            "print(Fernet.generate_key().decode())').")
    ancestors = _require(config, "FRAME_ANCESTORS", problems)
    for origin in ancestors.split():
        if not _ORIGIN_RE.match(origin):
            problems.append(f"TVWIDGET_FRAME_ANCESTORS: {origin!r} is not an origin like https://helpdesk.example.com.")
    api = urlsplit(config.get("TEAMVIEWER_API_URL") or "")
    if api.scheme not in ("http", "https") or not api.netloc:
        problems.append("TVWIDGET_TEAMVIEWER_API_URL must be an http(s) URL such as " + REAL_TEAMVIEWER_API + ".")
    elif config["ENV"] == "production" and api.scheme != "https":
        problems.append("TVWIDGET_TEAMVIEWER_API_URL must use https in production.")
    if config["ENV"] == "production" and not config.get("MAIL_DEFAULT_SENDER"):
        problems.append("TVWIDGET_MAIL_DEFAULT_SENDER is missing (the invitation email's From address).")
    if str(config.get("SESSION_COOKIE_NAME") or "").startswith("__Host-") and (
            config.get("SESSION_COOKIE_DOMAIN") or config.get("SESSION_COOKIE_PATH") != "/"):
        problems.append("SESSION_COOKIE_DOMAIN must be unset and SESSION_COOKIE_PATH '/' for a __Host- session "
                        "cookie (browsers drop it otherwise).")
    if config.get("DEFAULT_LOCALE") not in ("en", "ja"):
        problems.append("TVWIDGET_DEFAULT_LOCALE must be 'en' or 'ja'.")
    if problems:
        hint = "" if config["ENV"] != "production" else (
            " (For a local try-out set TVWIDGET_ENV=development, which supplies development values.)")
        raise ConfigError("tvwidget cannot start: " + " ".join(problems) + hint)
