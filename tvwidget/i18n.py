"""Languages (F15): Japanese and English, from the launch token, else the browser."""
import dataclasses
import functools
import re
import secrets
from datetime import date, datetime, timezone
from types import SimpleNamespace

from babel import Locale
from flask import Flask, current_app, g, has_request_context, request, url_for
from flask.signals import before_render_template, template_rendered
from flask_babel import (force_locale, format_currency, format_date, format_datetime, format_decimal, format_number,
                         format_percent, format_scientific, format_time, format_timedelta, get_locale, get_timezone,
                         get_translations)
from flask_babel.speaklater import LazyString
from jinja2 import Environment, FileSystemLoader, nodes
from jinja2.compiler import CodeGenerator

from .config import lent, setting
from .extensions import babel, babel_for_hosts
from .paths import PACKAGE_DIR, asset_dir

LANGUAGES = ("en", "ja")
# Parsed once: Flask-Babel parses a selector's string on every request, a Locale it takes as it is.
_PARSED = {language: Locale.parse(language) for language in LANGUAGES}


def _locale() -> Locale | str:
    agent = g.get("tvwidget_agent")
    if agent is not None and agent.locale:
        return _PARSED.get(agent.locale, agent.locale)
    if has_request_context():
        best = request.accept_languages.best_match(LANGUAGES)
        if best:
            return _PARSED[best]
    return setting("DEFAULT_LOCALE")


def _timezone() -> str:
    agent = g.get("tvwidget_agent")
    return (agent.tz if agent is not None else None) or "UTC"


def language() -> str:
    """Return the language of the current request."""
    locale = get_locale()
    return _NAMES.get(locale) or str(locale or setting("DEFAULT_LOCALE"))


_NAMES = {locale: str(locale) for locale in _PARSED.values()}  # str(Locale) is rebuilt on every call


def iso_utc(value) -> str:
    """Return an aware datetime as ISO 8601 UTC (for ``<time datetime>``)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _translations():
    """Return the translations of the current locale, looked up once per process and locale.

    Flask-Babel looks them up again for every string a template translates
    (8 µs each, a quarter of a widget render), and the first lookup in a
    request cost a status poll a tenth of its time; keyed by the current
    locale, ``force_locale`` (an email in the requester's language) still
    switches.  The catalogues never change while the app runs.
    """
    locale = get_locale()
    cache = current_app.extensions.setdefault("tvwidget_translations", {})
    translations = cache.get(locale)
    if translations is None:
        translations = cache[locale] = get_translations()
    return translations


def gettext(string: str, **variables) -> str:
    """Flask-Babel's ``gettext`` for the hot path, on the request's cached translations."""
    translated = _translations().ugettext(string)
    return translated % variables if variables else translated


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


class _TranslatingCodeGenerator(CodeGenerator):
    """Compile ``_("literal", name=value)`` to its translation in the environment's one language.

    The result is what Jinja's newstyle gettext returns at render time —
    ``Markup(translation) % {name: value}`` under autoescape, so the values are
    escaped and the translation is not — without three function calls and a
    catalogue lookup per string on every render.  Any other ``_()`` call is
    left to the runtime gettext.
    """

    def visit_Call(self, node: nodes.Call, frame, forward_caller: bool = False) -> None:
        if not (isinstance(node.node, nodes.Name) and node.node.name == "_" and len(node.args) == 1
                and isinstance(node.args[0], nodes.Const) and isinstance(node.args[0].value, str)
                and node.dyn_args is None and node.dyn_kwargs is None and not forward_caller
                and not frame.eval_ctx.volatile):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        translated = self.environment.tvwidget_translations.ugettext(node.args[0].value)
        self.write(f"({'Markup' if frame.eval_ctx.autoescape else 'str'}({translated!r}) % {{")
        for keyword in node.kwargs:
            self.write(f"{keyword.key!r}: ")
            self.visit(keyword.value, frame)
            self.write(", ")
        self.write("})")


@functools.lru_cache(maxsize=1024)
def _formatted(value, format, locale, zone) -> str:
    # Called in the request whose locale and zone make the key: Flask-Babel reads the same ones.
    return format_datetime(value, format)


def _datetimeformat(value, format=None) -> str:
    """Flask-Babel's ``datetimeformat``, remembering what it formatted (an open case's expiry, view after view)."""
    if value is None:
        return format_datetime(value, format)
    return _formatted(value, format, get_locale(), get_timezone())


def _environment(app: Flask, language: str):
    """Return the Jinja environment whose templates are compiled in ``language`` (made on first use)."""
    environments = app.extensions.setdefault("tvwidget_jinja", {})
    environment = environments.get(language)
    if environment is None:
        base = app.extensions["tvwidget"].jinja_env
        # A fresh cache: templates compiled by the shared environment must not leak in.
        environment = base.overlay(cache_size=base.cache.capacity if base.cache is not None else 400)
        environment.code_generator_class = _TranslatingCodeGenerator
        environment.filters = {**base.filters, "datetimeformat": _datetimeformat}
        with force_locale(language):
            environment.tvwidget_translations = get_translations()
        environments[language] = environment
    return environment


def _url_for(endpoint: str, **values) -> str:
    """Flask's ``url_for`` for templates, remembered per mount point (a widget render builds about ten)."""
    if any(name.startswith("_") for name in values):  # _external and the like depend on more than the path
        return url_for(endpoint, **values)
    urls = current_app.extensions.setdefault("tvwidget_urls", {})
    key = (request.script_root, endpoint, *sorted(values.items()))
    url = urls.get(key)
    if url is None:
        if len(urls) >= 1000:  # case codes make the keys unbounded over time
            urls.clear()
        url = urls[key] = url_for(endpoint, **values)
    return url


def _render(app: Flask, template, context: dict) -> str:
    # As Flask's render_template does, signals included.
    before_render_template.send(app, _async_wrapper=app.ensure_sync, template=template, context=context)
    rendered = template.render(context)
    template_rendered.send(app, _async_wrapper=app.ensure_sync, template=template, context=context)
    return rendered


def render_page(name: str, **context) -> str:
    """Flask's ``render_template``, on tvwidget's own Jinja environment (the app's own in the standalone app)."""
    app = current_app._get_current_object()
    template = app.extensions["tvwidget"].jinja_env.get_template(name)
    app.update_template_context(context)
    return _render(app, template, context)


def render_template(name: str, **context) -> str:
    """Render like Flask's ``render_template``, with the template compiled in the request's language."""
    app = current_app._get_current_object()
    template = _environment(app, language()).get_template(name)
    app.update_template_context(context)
    context["url_for"] = _url_for
    return _render(app, template, context)


# --- remembered renders (the widget on a ticket view, the status fragment on a poll) -----------------------

REMEMBERED_MAX = 512
# What a per-request value may hold to be filled into a remembered render: characters that HTML
# escaping and |tojson leave as they are (the credential is URL-safe base64 with dots, the key hex).
_FILLABLE = re.compile(r"[A-Za-z0-9_.-]*\Z")
_PLACEHOLDER = f"tvwidgetfill{secrets.token_hex(8)}n"


class _Unfrozen(Exception):
    """A context value whose identity the memo cannot be sure of: render it afresh."""


def _frozen(value):
    """Return a hashable stand-in for ``value`` that differs whenever its rendering could differ.

    Types are kept beside the values: ``True == 1`` and ``Markup("<b>") == "<b>"`` render differently.
    """
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind in (int, bool, float, date) or isinstance(value, str):  # Markup, str enums
        return kind, value
    if kind is datetime:
        return kind, value, value.tzinfo  # 9:00+09:00 == 0:00+00:00, but the two may render apart
    if kind is LazyString:
        # Its message and variables: the request's language (part of the key) makes the text.
        # (Making the text itself costs Flask-Babel 6 µs.)
        return kind, value._func, value._args, _frozen(value._kwargs)
    if kind is dict:
        return kind, tuple((name, _frozen(item)) for name, item in value.items())
    if kind in (tuple, list):
        return kind, tuple(_frozen(item) for item in value)
    if isinstance(value, SimpleNamespace) or dataclasses.is_dataclass(value):
        # A snapshot of a row (or of the launch token's agent): each field keeps one type,
        # so its values alone tell renderings apart.
        return kind, tuple(vars(value).values())
    raise _Unfrozen(kind)


def render_remembered(name: str, fills: tuple[str, ...], **context) -> str:
    """``render_template``, remembering the output for the same template, language, zone, mount and context.

    The key is the *whole* context (minus ``fills``), frozen with its types, so no input of
    the render can be left out of it by mistake; the widget's templates read nothing else
    but the language, the time zone and URLs under the mount point.  ``fills`` name
    per-request values (the credential, a fresh idempotency key): the remembered render holds a
    placeholder in their place, filled in on every use.  Anything unusual renders afresh.
    """
    values = {fill: context[fill] for fill in fills}
    if not all(isinstance(value, str) and _FILLABLE.match(value) for value in values.values()):
        return render_template(name, **context)
    remembered = current_app.extensions.setdefault("tvwidget_rendered", {})
    try:
        key = (name, language(), _timezone(), request.script_root,
               _frozen({item: value for item, value in context.items() if item not in values}))
        rendered = remembered.get(key)
    except (_Unfrozen, TypeError):  # TypeError: an unhashable field in a snapshot
        return render_template(name, **context)
    if rendered is None:
        rendered = render_template(name, **context | {fill: f"{_PLACEHOLDER}{n}z" for n, fill in enumerate(fills)})
        if len(remembered) >= REMEMBERED_MAX:
            remembered.clear()
        remembered[key] = rendered
    for n, fill in enumerate(fills):
        rendered = rendered.replace(f"{_PLACEHOLDER}{n}z", values[fill])
    return rendered
