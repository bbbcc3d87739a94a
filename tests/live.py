"""Serve a WSGI app on 127.0.0.1 in a background thread, for tests that need real HTTP."""
import contextlib
import threading
import time

import requests
from werkzeug.serving import make_server


@contextlib.contextmanager
def serve(wsgi_app, host="127.0.0.1", port=0):
    """Yield the base URL of ``wsgi_app`` served by a threaded werkzeug server."""
    server = make_server(host, port, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_for_http(url: str, timeout: float = 30.0, why=lambda: "") -> None:
    """Wait until something answers HTTP at ``url`` (a server process starting); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2).close()
            return
        except requests.RequestException:
            assert time.monotonic() < deadline, f"nothing answered at {url} within {timeout} s. {why()}"
            time.sleep(0.2)
