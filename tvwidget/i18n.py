"""Languages (F15): Japanese and English, from the launch token, else the browser."""
import functools
from datetime import timezone

from babel import Locale
from flask import Flask, current_app, g, has_request_context, request, url_for
from flask.signals import before_render_template, template_rendered
from flask_babel import force_locale, format_datetime, get_locale, get_timezone, get_translations
from jinja2 import nodes
from jinja2.compiler import CodeGenerator

from .extensions import babel
from .paths import PACKAGE_DIR

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


def _translations():
    """Return the request's translations, looked up once per request and language.

    Flask-Babel looks them up again for every string a template translates
    (8 µs each, a quarter of a widget render); keyed by the current locale,
    ``force_locale`` (an email in the requester's language) still switches.
    """
    locale = get_locale()
    cache = g.setdefault("tvwidget_translations", {})
    translations = cache.get(locale)
    if translations is None:
        translations = cache[locale] = get_translations()
    return translations


def gettext(string: str, **variables) -> str:
    """Flask-Babel's ``gettext`` for the hot path, on the request's cached translations."""
    translated = _translations().ugettext(string)
    return translated % variables if variables else translated


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=_locale, timezone_selector=_timezone,
                   default_translation_directories=str(PACKAGE_DIR / "translations"))
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
    app.add_template_filter(iso_utc, "isoutc")
    app.add_template_global(language, "tvwidget_language")
    app.add_template_global(_timezone, "tvwidget_timezone")


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
        # A fresh cache: templates compiled by the shared environment must not leak in.
        environment = app.jinja_env.overlay(cache_size=app.jinja_env.cache.capacity
                                            if app.jinja_env.cache is not None else 400)
        environment.code_generator_class = _TranslatingCodeGenerator
        environment.filters = {**app.jinja_env.filters, "datetimeformat": _datetimeformat}
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


def render_template(name: str, **context) -> str:
    """Render like Flask's ``render_template``, with the template compiled in the request's language."""
    app = current_app._get_current_object()
    template = _environment(app, language()).get_template(name)
    app.update_template_context(context)
    context["url_for"] = _url_for
    before_render_template.send(app, _async_wrapper=app.ensure_sync, template=template, context=context)
    rendered = template.render(context)
    template_rendered.send(app, _async_wrapper=app.ensure_sync, template=template, context=context)
    return rendered
