"""TeamViewer faults reach the agent as clear messages and leave no half-made case."""
import json
import time

import pytest
import sqlalchemy as sa
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.storage.models import AuditEvent, IntegrationSettings, ServiceCase

from ..conftest import HOST_API_KEY, connect
from ..helpers import json_response

API = {"Authorization": f"Bearer {HOST_API_KEY}"}
SESSION = {"code": "s12-345-678", "state": "Open", "supporter_link": "https://tv.test/s12345678-abc",
           "end_customer_link": "https://tv.test/s12345678", "valid_until": "2099-01-01T00:00:00Z"}


@pytest.fixture
def app(app_factory, teamviewer_server):
    """The app (behind ``client`` and ``launch``) talking to the scripted TeamViewer double."""
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"), TEAMVIEWER_READ_TIMEOUT=0.5,
                      TEAMVIEWER_RETRIES=0)
    connect(app)
    return app


FAULTS = {
    "timeout": (lambda request: (time.sleep(0.8), json_response(200, SESSION))[1], "did not answer in time"),
    "400": (lambda r: json_response(400, {"error": "invalid_request", "error_description": "groupname too long"}),
            "groupname too long"),
    "licence": (lambda r: Response("Session could not be created due to license limitations.", 400,
                                   content_type="text/plain"), "license does not allow"),
    "401": (lambda r: json_response(401, {"error": "token_expired", "error_code": 1}, **{"WWW-Authenticate": "Bearer"}),
            "rejected the script token"),
    "403 rate limit": (lambda r: json_response(403, {"error": "rate_limit_reached"}), "request limit"),
    "429": (lambda r: json_response(429, {"error": "too_many_requests"}, **{"Retry-After": "30"}), "request limit"),
    "403": (lambda r: json_response(403, {"error": "invalid_permission"}), "lacks a permission"),
    "500": (lambda r: json_response(500, {"error": "internal_error"}), "cannot be reached"),
    "html": (lambda r: Response("<html>Bad gateway</html>", 200, content_type="text/html"), "could not understand"),
    "empty": (lambda r: Response("", 200, content_type="application/json"), "could not understand"),
    "no code": (lambda r: json_response(200, {k: v for k, v in SESSION.items() if k != "code"}),
                "could not understand"),
    "bad code": (lambda r: json_response(200, SESSION | {"code": "12-345-678"}), "could not understand"),
}


def _wait_until_served(server, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(server.log) < count and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("fault", FAULTS)
def test_failed_create_shows_an_alert_leaves_no_case_and_the_next_press_works(app, teamviewer_server, launch, fault):
    handler, message = FAULTS[fault]
    teamviewer_server.expect_oneshot_request("/api/v1/sessions", method="POST").respond_with_handler(handler)
    widget = launch()
    started = time.monotonic()
    response = widget.play()
    elapsed = time.monotonic() - started
    config = app.config  # checklist 27: the press ends within the client's budget, whatever TeamViewer does
    assert elapsed < config["TEAMVIEWER_CONNECT_TIMEOUT"] + config["TEAMVIEWER_READ_TIMEOUT"] + 1.0, elapsed
    assert response.status_code == 502
    assert widget.state() == "idle"
    assert 'role="alert"' in widget.html and message in widget.html
    assert "Traceback" not in widget.html
    with app.app_context():
        assert db.session.scalars(sa.select(ServiceCase.state)).all() == ["failed"]
        assert "case_failed" in db.session.scalars(sa.select(AuditEvent.kind)).all()
    assert widget.client.get("/api/v1/tickets/T-1/service-case", headers=API).status_code == 404
    _wait_until_served(teamviewer_server, 1)  # a timed-out request may still be in the double's hands
    teamviewer_server.expect_oneshot_request("/api/v1/sessions", method="POST").respond_with_json(SESSION)
    widget.play()
    assert widget.state() == "open" and widget.field("session-code") == "s12-345-678"


def test_create_is_never_sent_twice(app, teamviewer_server, launch):
    teamviewer_server.expect_request("/api/v1/sessions", method="POST").respond_with_json({"error": "internal_error"},
                                                                                    status=503)
    launch().play()
    assert len([entry for entry in teamviewer_server.log if entry[0].method == "POST"]) == 1


def _open_case(teamviewer_server, launch):
    teamviewer_server.expect_oneshot_request("/api/v1/sessions", method="POST").respond_with_json(SESSION)
    widget = launch()
    widget.play()
    assert widget.state() == "open"
    return widget


def test_failed_stop_keeps_the_case_open_and_says_why(app, teamviewer_server, launch):
    widget = _open_case(teamviewer_server, launch)
    teamviewer_server.expect_oneshot_request("/api/v1/sessions/s12-345-678", method="PUT").respond_with_json(
        {"error": "internal_error"}, status=500)
    response = widget.stop()
    assert response.status_code == 502
    assert widget.state() == "open" and 'role="alert"' in widget.html
    assert widget.client.get("/api/v1/tickets/T-1/service-case", headers=API).status_code == 200
    teamviewer_server.expect_oneshot_request("/api/v1/sessions/s12-345-678", method="PUT").respond_with_data("", 204)
    widget.stop()
    assert widget.state() == "idle"


def test_stop_of_a_code_teamviewer_forgot_still_closes_the_case(app, teamviewer_server, launch):
    widget = _open_case(teamviewer_server, launch)
    teamviewer_server.expect_oneshot_request("/api/v1/sessions/s12-345-678", method="PUT").respond_with_json(
        {"error": "not_found"}, status=404)
    widget.stop()
    assert widget.state() == "idle"
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.kind == "case_closed"))
        assert json.loads(event.detail)["unknown_to_teamviewer"] is True


def test_stop_after_the_token_was_removed_gives_a_clear_error(app, teamviewer_server, launch):
    widget = _open_case(teamviewer_server, launch)
    with app.app_context():
        db.session.get(IntegrationSettings, 1).token_ciphertext = None
        db.session.commit()
    response = widget.stop()
    assert response.status_code == 409
    assert "no longer connected" in widget.html and "s12-345-678" in widget.html
    with app.app_context():
        assert db.session.scalar(sa.select(ServiceCase.state)) == "open"
        assert "case_close_failed" in db.session.scalars(sa.select(AuditEvent.kind)).all()


def test_unreadable_stored_token_asks_for_it_again(app, teamviewer_server, launch):
    with app.app_context():
        row = db.session.get(IntegrationSettings, 1)
        row.token_ciphertext = row.token_ciphertext[:-6] + "AAAAAA"
        db.session.commit()
    widget = launch()
    widget.play()
    assert "enter the script token again" in widget.html
    assert teamviewer_server.log == []
