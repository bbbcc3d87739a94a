"""Serve a WSGI app on 127.0.0.1 in a background thread, for tests that need real HTTP."""
import contextlib
import threading

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
