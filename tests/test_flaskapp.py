"""The standalone app's Flask class: per-request work done once, with Flask's behaviour kept."""
import flask.app
import pytest

from tvwidget import flaskapp

from .test_admin import _admin


def test_the_session_serializer_is_made_once_per_key_and_follows_key_rotation(app):
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first
    cookie = first.dumps({"admin": "agent-1"})

    old_key = app.config["SECRET_KEY"]
    app.config.update(SECRET_KEY="a-new-secret-key-0123456789abcdef", SECRET_KEY_FALLBACKS=[old_key])
    rotated = interface.get_signing_serializer(app)
    assert rotated is not first
    assert rotated.loads(cookie) == {"admin": "agent-1"}  # signed with the old key: still read
    app.config["SECRET_KEY_FALLBACKS"] = []
    with pytest.raises(Exception, match="Signature"):
        interface.get_signing_serializer(app).loads(cookie)


def test_an_admin_session_lasts_across_requests_with_the_remembered_serializer(client):
    assert _admin(client).status_code == 200
    for _ in range(3):
        assert client.get("/embed/admin/settings").status_code == 200


def test_each_hook_is_checked_for_a_coroutine_once(app, monkeypatch):
    checked = []
    real = flask.app.iscoroutinefunction
    monkeypatch.setattr(flask.app, "iscoroutinefunction", lambda func: checked.append(func) or real(func))
    client = app.test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code in (200, 503)
    assert checked and len(checked) == len(set(map(id, checked)))


def test_the_remembered_checks_stay_bounded_and_take_any_callable(app, monkeypatch):
    monkeypatch.setattr(flaskapp, "SYNCED_MAX", 10)

    class Unhashable:
        __hash__ = None

        def __call__(self):
            return "called"

    hook = Unhashable()
    assert app.ensure_sync(hook) is hook
    for _ in range(50):
        fresh = lambda: None  # noqa: E731  (a new callable each time, as a careless extension might pass)
        assert app.ensure_sync(fresh) is fresh
    assert len(app._synced) <= 10
