"""``/healthz``: database reachable and integration state, no secrets, no TeamViewer call."""

from tvwidget import create_app
from tvwidget.extensions import db
from tvwidget.storage.models import IntegrationSettings

from ..conftest import SANDBOX_TOKEN, connect


def test_not_connected_is_degraded_but_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "degraded", "database": "ok", "teamviewer": "not_connected"}


def test_connected_is_ok_and_calls_no_teamviewer(app_factory, teamviewer_server):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"))
    connect(app)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "teamviewer": "connected"}
    assert teamviewer_server.log == []
    body = response.get_data(as_text=True)
    with app.app_context():
        row = db.session.get(IntegrationSettings, 1)
        assert SANDBOX_TOKEN not in body and row.token_ciphertext not in body and row.token_last4 not in body


def test_an_unreadable_token_is_reported(app):
    connect(app)
    with app.app_context():
        db.session.get(IntegrationSettings, 1).token_ciphertext = "gAAAAA-not-a-fernet-token"
        db.session.commit()
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.json["teamviewer"] == "token_unreadable"
    assert response.json["status"] == "degraded"


def test_an_unreachable_database_answers_503(tmp_path, caplog):
    app = create_app({"ENV": "development", "TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing/dir/tvwidget.db"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "degraded", "database": "unavailable", "teamviewer": "unknown"}
    assert "database is unavailable (OperationalError)" in caplog.text
    with app.app_context():
        db.engine.dispose()


def test_health_sends_the_security_headers_and_is_never_cached(client):
    response = client.get("/healthz")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response.headers
    assert client.head("/healthz").status_code == 200
