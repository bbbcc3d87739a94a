"""Languages: Japanese and English, from the launch token, else the browser."""
from flask import Flask, current_app, g, has_request_context, request
from flask.signals import before_render_template, template_rendered
from flask_babel import (
    format_currency,
    format_date,
    format_datetime,
    format_decimal,
    format_number,
    format_percent,
    format_scientific,
    format_time,
    format_timedelta,
    get_locale,
    get_translations,
)
from jinja2 import Environment, FileSystemLoader

from tvwidget import timefmt
from tvwidget.config import lent, setting
from tvwidget.extensions import babel, babel_for_hosts
from tvwidget.paths import PACKAGE_DIR, asset_dir

LANGUAGES = ("en", "ja")


def _locale() -> str:
    agent = g.get("tvwidget_agent")
    if agent is not None and agent.locale:
        return agent.locale
    if has_request_context():
        best = request.accept_languages.best_match(LANGUAGES)
        if best:
            return best
    return setting("DEFAULT_LOCALE")


def _timezone() -> str:
    agent = g.get("tvwidget_agent")
    return (agent.tz if agent is not None else None) or "UTC"


def timezone() -> str:
    """Return the time zone the current request shows times in."""
    return _timezone()


def language() -> str:
    """Return the language of the current request."""
    return str(get_locale() or setting("DEFAULT_LOCALE"))


def iso_utc(value) -> str:
    """Return an aware datetime as ISO 8601 UTC for ``<time datetime>`` ("" for None)."""
    return timefmt.iso_utc(value) or ""


def _translations():
    """Return Flask-Babel's translations for the current locale, looked up once per process and locale.

    Flask-Babel looks them up again for each string a template translates;
    the catalogues never change while the app runs, and keyed by the current
    locale, ``force_locale`` (an email in the requester's language) still switches.
    """
    cache = current_app.extensions.setdefault("tvwidget_translations", {})
    locale = get_locale()
    translations = cache.get(locale)
    if translations is None:
        translations = cache[locale] = get_translations()
    return translations


# What Flask-Babel puts on the app's Jinja environment; a host app's stays the host's (tvwidget's own gets them).
BABEL_FILTERS = {
    "datetimeformat": format_datetime, "dateformat": format_date, "timeformat": format_time,
    "timedeltaformat": format_timedelta, "numberformat": format_number, "decimalformat": format_decimal,
    "currencyformat": format_currency, "percentformat": format_percent, "scientificformat": format_scientific,
}


def host_environment(app: Flask) -> Environment:
    """Return tvwidget's own Jinja environment for a host ``app``: Flask's usual globals, tvwidget's templates.

    tvwidget's translations, filters and globals go on it, so the host's
    ``app.jinja_env`` (its gettext, globals and template folders) stays the host's.
    """
    environment = app.create_jinja_environment()
    environment.loader = FileSystemLoader(asset_dir("templates"))
    return environment


def init_app(app: Flask, state) -> None:
    """Bind Flask-Babel to ``app`` and put tvwidget's gettext, filters and globals on ``state.jinja_env``."""
    directories = str(PACKAGE_DIR / "translations")
    options = {"locale_selector": _locale, "timezone_selector": _timezone,
               "default_translation_directories": directories}
    environment = state.jinja_env
    if state.standalone:
        babel.init_app(app, **options)
    else:
        # Flask-Babel reads these once; the host's config keeps none of them.
        with lent(app.config, {"BABEL_TRANSLATION_DIRECTORIES": directories, "BABEL_DEFAULT_LOCALE": "en",
                               "BABEL_DEFAULT_TIMEZONE": "UTC", "BABEL_DOMAIN": "messages"}):
            babel_for_hosts.init_app(app, **options)
        environment.add_extension("jinja2.ext.i18n")
        environment.filters.update(BABEL_FILTERS)
    # Jinja's i18n extension on Flask-Babel's translations, as Flask-Babel installs them on an app's environment.
    environment.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
    environment.filters["isoutc"] = iso_utc
    environment.globals["tvwidget_language"] = language
    environment.globals["tvwidget_timezone"] = _timezone


def render_page(name: str, **context) -> str:
    """Flask's ``render_template``, on tvwidget's own Jinja environment (the app's own in the standalone app)."""
    app = current_app._get_current_object()  # the signals' sender, as Flask's render_template sends it
    template = app.extensions["tvwidget"].jinja_env.get_template(name)
    app.update_template_context(context)
    before_render_template.send(app, template=template, context=context)
    rendered = template.render(context)
    template_rendered.send(app, template=template, context=context)
    return rendered
