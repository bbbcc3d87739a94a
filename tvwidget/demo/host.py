"""The demo helpdesk (``TVWIDGET_ENV=demo`` only): what a host does, done the host's way.

It signs launch tokens with the embed secret, frames the widget from another
site (``localhost`` page, ``127.0.0.1`` widget), and calls the host API over
HTTP with the host key, exactly as docs/host-contract.md describes.
"""
import time
import uuid

import jwt

from tvwidget.config import setting

DEMO_TICKETS = {
    "DEMO-1001": {
        "id": "DEMO-1001", "subject": "Outlook crashes on start",
        "requester": {"name": "John Doe", "email": "john.doe@example.com"},
        "category": "PC", "type": "Incident", "priority": "High", "source": "Email", "status": "open",
        "description": "Since this morning Outlook closes right after the splash screen. "
                       "I restarted twice. Could someone look at my PC?",
    },
    "DEMO-1002": {
        "id": "DEMO-1002", "subject": "プリンターに印刷できない",
        "requester": {"name": "山田 花子", "email": "hanako.yamada@example.jp"},
        "category": "Printer", "type": "Service request", "priority": "Medium", "source": "User portal",
        "status": "open",
        "description": "3階の複合機に印刷ジョブを送っても何も出てきません。リモートで確認していただけますか。",
    },
}

DEMO_AGENTS = {
    "en": {"sub": "agent-1", "name": "Alex Morgan", "email": "alex.morgan@helpdesk.example", "tz": "Europe/London"},
    "ja": {"sub": "agent-2", "name": "田中 愛子", "email": "aiko.tanaka@helpdesk.example", "tz": "Asia/Tokyo"},
}


def launch_token(role: str, locale: str, ticket_id: str | None = None) -> str:
    """Return a launch token as a host would sign it (one hour at most, single-use ``jti``)."""
    now = int(time.time())
    agent = DEMO_AGENTS[locale]
    claims = {
        "aud": "tvwidget", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex,
        "sub": agent["sub"] if role == "agent" else "admin-1",
        "name": agent["name"] if role == "agent" else "Helpdesk Admin",
        "email": agent["email"] if role == "agent" else "admin@helpdesk.example",
        "role": role, "locale": locale, "tz": agent["tz"],
    }
    if ticket_id is not None:
        ticket = DEMO_TICKETS[ticket_id]
        claims["ticket"] = {k: v for k, v in ticket.items() if k != "description"}
    return jwt.encode(claims, setting("EMBED_SECRET"), algorithm="HS256")


def main() -> None:
    """Serve the demo: tvwidget, the demo helpdesk and the TeamViewer sandbox in one process."""
    import os
    import subprocess
    import sys

    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.serving import make_server

    from tvwidget.demo import create_app
    from tvwidget.demo.sandbox import create_sandbox_app

    port = int(os.environ.get("PORT", "5000"))
    os.environ.setdefault("TVWIDGET_ENV", "demo")
    os.environ.setdefault("TVWIDGET_TEAMVIEWER_API_URL", f"http://127.0.0.1:{port}/sandbox/api/v1")
    app = create_app()
    served = DispatcherMiddleware(app, {"/sandbox": create_sandbox_app()})
    # Threaded: the widget reaches the sandbox over HTTP on this same server.
    # Bind before printing, so a busy port fails before any URL is shown.
    server = make_server("127.0.0.1", port, served, threaded=True)
    # The periodic jobs (outbox, expiry, reconcile...) run beside it, as in production (``tvwidget worker``).
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "tvwidget:create_app()", "tvwidget", "worker"])
    print(f"\n  tvwidget demo: open http://localhost:{port}/demo/ticket/DEMO-1001\n"
          f"  (the widget is served from http://127.0.0.1:{port}, a different site, as in a real helpdesk)\n"
          f"  worker: process {worker.pid} (flask --app wsgi tvwidget worker)\n",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.terminate()  # (Ctrl-C in a terminal has already asked it to stop)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    main()
