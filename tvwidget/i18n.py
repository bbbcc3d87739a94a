"""Languages (F15): Japanese and English, from the launch token, else the browser."""
from datetime import timezone

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import get_locale

from .extensions import babel
from .paths import PACKAGE_DIR

LANGUAGES = ("en", "ja")


def _locale() -> str:
    agent = g.get("tvwidget_agent")
    if agent is not None and agent.locale:
        return agent.locale
    if has_request_context():
        best = request.accept_languages.best_match(LANGUAGES)
        if best:
            return best
    return current_app.config["DEFAULT_LOCALE"]


def _timezone() -> str:
    agent = g.get("tvwidget_agent")
    return (agent.tz if agent is not None else None) or "UTC"


def language() -> str:
    """Return the language of the current request."""
    return str(get_locale() or current_app.config["DEFAULT_LOCALE"])


def iso_utc(value) -> str:
    """Return an aware datetime as ISO 8601 UTC (for ``<time datetime>``)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=_locale, timezone_selector=_timezone,
                   default_translation_directories=str(PACKAGE_DIR / "translations"))
    app.add_template_filter(iso_utc, "isoutc")
    app.add_template_global(language, "tvwidget_language")
    app.add_template_global(_timezone, "tvwidget_timezone")
