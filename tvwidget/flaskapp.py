"""The standalone application's class: Flask, with work it repeats on every request done once.

A host that mounts tvwidget with ``init_app`` keeps its own Flask class and
session interface; these only change what ``create_app`` builds.
"""
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


SYNCED_MAX = 1000


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer made once per key instead of per request.

    Flask builds it and parses the cookies in ``open_session`` for every
    request, with or without a cookie; the widget and the host API never
    carry one (only the admin area has a session).  Together that cost about
    20 µs a request (8 % of a status poll).
    """

    def open_session(self, app: Flask, request):
        if "HTTP_COOKIE" not in request.environ and app.secret_key:
            return self.session_class()  # what Flask returns for no cookie, without parsing an empty jar
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = app.extensions.get("tvwidget_session_serializer")
        if cached is None or cached[0] != keys:
            cached = app.extensions["tvwidget_session_serializer"] = (keys, super().get_signing_serializer(app))
        return cached[1]


class TVWidgetFlask(Flask):
    """Flask for the standalone app: cached session serializer, sync checks of hooks made once."""

    session_interface = SessionInterface()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._synced: dict = {}

    def ensure_sync(self, func):
        # Flask asks inspect whether each hook and view is a coroutine function on every request
        # (eight times per request here); the answer never changes for a function.  Bounded, in
        # case something hands Flask a fresh callable per request; unhashable ones are not kept.
        try:
            synced = self._synced.get(func)
        except TypeError:
            return super().ensure_sync(func)
        if synced is None:
            synced = super().ensure_sync(func)
            if len(self._synced) < SYNCED_MAX:
                self._synced[func] = synced
        return synced
