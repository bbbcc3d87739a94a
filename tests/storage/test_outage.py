"""A database outage mid-use: clear 503s, nothing partial written, recovery by itself (issue 7)."""
import socket
import threading

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import ServiceCase

from ..conftest import HOST_API_KEY, connect, free_port, make_token

API = {"Authorization": f"Bearer {HOST_API_KEY}"}


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be cut (database unreachable) and restored on the same port."""

    def __init__(self, target=("127.0.0.1", 5432)):
        self.target, self.port = target, free_port()
        self.sockets, self.listener = [], None
        self.restore()

    def restore(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the other thread
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.sockets = []

    def close(self):
        self.cut()


@pytest.fixture
def proxied_app(database_url, app_factory):
    if not database_url.startswith("postgresql"):
        pytest.skip("the outage is staged on PostgreSQL (a server that can become unreachable)")
    proxy = CuttableProxy()
    url = sa.engine.make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    app = app_factory(SQLALCHEMY_DATABASE_URI=url.render_as_string(hide_password=False))
    connect(app)
    yield app, proxy
    proxy.close()


def test_database_outage_gives_503s_and_service_resumes(proxied_app):
    app, proxy = proxied_app
    client = app.test_client()
    from ..conftest import Widget

    widget = Widget(client, client.get("/embed/widget", query_string={"token": make_token()}).text)
    proxy.cut()
    response = widget.play()
    assert response.status_code == 503, response.text
    assert 'role="alert"' in response.text and "cannot reach its database" in response.text
    assert "Traceback" not in response.text
    api = client.post("/api/v1/tickets/T-1/close", headers=API)
    assert api.status_code == 503 and api.get_json()["error"] == "database_unavailable"
    launch = client.get("/embed/widget", query_string={"token": make_token()})
    assert launch.status_code == 503 and 'role="alert"' in launch.text

    proxy.restore()
    widget = Widget(client, client.get("/embed/widget", query_string={"token": make_token()}).text)
    assert widget.play().status_code == 200 and widget.state() == "open"
    with app.app_context():
        assert db.session.scalars(sa.select(ServiceCase.state)).all() == ["open"]  # nothing half-made
