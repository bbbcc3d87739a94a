"""`make run-helpdesk`: django-helpdesk with the tvwidget integration beside tvwidget's demo (TeamViewer sandbox).

The helpdesk is served on http://localhost:$HELPDESK_PORT and tvwidget on http://127.0.0.1:$PORT: two
different sites, so the widget is a cross-site frame exactly as in production.  Both databases are SQLite
under instance/.  Demo values only (public secrets, DEBUG on).
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]
DEMO = Path(__file__).resolve().parent
PYTHON = sys.executable
PORT = int(os.environ.get("PORT", "5000"))
HELPDESK_PORT = int(os.environ.get("HELPDESK_PORT", "8000"))
TVWIDGET = f"http://127.0.0.1:{PORT}"
HELPDESK = f"http://localhost:{HELPDESK_PORT}"

SHARED = {  # both sides must agree on these (demo values: never use them in production)
    "TVWIDGET_EMBED_SECRET": "helpdesk-demo-embed-secret-not-for-production-0123",
    "TVWIDGET_HOST_API_KEY": "helpdesk-demo-host-api-key-not-for-production",
}
TVWIDGET_ENV = os.environ | SHARED | {
    "TVWIDGET_ENV": "demo", "PORT": str(PORT),
    "TVWIDGET_HOST_WEBHOOK_URL": f"http://127.0.0.1:{HELPDESK_PORT}/tvwidget/webhook/",
}
HELPDESK_ENV = os.environ | SHARED | {
    "DJANGO_SETTINGS_MODULE": "demo_site.settings", "TVWIDGET_URL": TVWIDGET,
    "HELPDESK_DB": str(ROOT / "instance" / "helpdesk.sqlite3"),
}


def run(*args, env, cwd):
    return subprocess.run(args, env=env, cwd=cwd, check=True, capture_output=True, text=True).stdout


def wait_for(url, process, name):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} stopped (is port {url.rsplit(':', 1)[-1].split('/')[0]} busy?)")
        try:
            requests.get(url, timeout=2).close()
            return
        except requests.RequestException:
            time.sleep(0.3)
    sys.exit(f"{name} did not answer at {url}")


def _stop(signum, frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, _stop)
    (ROOT / "instance").mkdir(exist_ok=True)
    flask = [PYTHON, "-m", "flask", "--app", "wsgi"]
    run(*flask, "db", "upgrade", env=TVWIDGET_ENV, cwd=ROOT)
    run(PYTHON, "-m", "flask", "--app", "tvwidget.demo", "tvwidget", "demo-setup", env=TVWIDGET_ENV, cwd=ROOT)
    run(PYTHON, "manage.py", "migrate", "--no-input", env=HELPDESK_ENV, cwd=DEMO)
    ticket_id = run(PYTHON, "manage.py", "seed_helpdesk_demo", env=HELPDESK_ENV, cwd=DEMO).strip().splitlines()[-1]

    tvwidget = subprocess.Popen([PYTHON, "-m", "tvwidget.demo.host"], env=TVWIDGET_ENV, cwd=ROOT,
                                stdout=subprocess.DEVNULL)
    helpdesk = subprocess.Popen([PYTHON, "manage.py", "runserver", f"127.0.0.1:{HELPDESK_PORT}", "--noreload"],
                                env=HELPDESK_ENV, cwd=DEMO)
    try:
        wait_for(f"{TVWIDGET}/healthz", tvwidget, "tvwidget")
        wait_for(f"{HELPDESK}/login/".replace("localhost", "127.0.0.1"), helpdesk, "django-helpdesk")
        from demo_site.demo_login import PASSWORD, USERNAME

        print(f"\n  django-helpdesk with tvwidget: open {HELPDESK}/tickets/{ticket_id}/\n"
              f"  login: {USERNAME} / {PASSWORD}\n"
              f"  (the widget comes from {TVWIDGET}, a different site; the requester's invitation "
              f"appears at {TVWIDGET}/demo/mail)\n", flush=True)
        while tvwidget.poll() is None and helpdesk.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (helpdesk, tvwidget):
            if process.poll() is None:
                process.terminate()
        for process in (helpdesk, tvwidget):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.path.insert(0, str(DEMO))
    main()
