"""The Python host kit (clients/python) against a real tvwidget served over HTTP on loopback.

Nothing of tvwidget is mocked: the kit signs tokens that tvwidget's launch
accepts, calls the host API of a running server, and verifies the webhook
deliveries that server really sends to the kit's example host
(clients/python/examples/flask_host.py, the README's host).
"""
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Response

from ..conftest import EMBED_SECRET, HOST_API_KEY, REQUIRE_ALL, Widget, connect, free_port, skip_or_fail

try:
    import tvwidget_host as tv
except ImportError:  # a virtualenv made before the kit existed
    if REQUIRE_ALL:
        raise
    pytest.skip("the host kit is not installed: pip install -e clients/python (make install does it)",
                allow_module_level=True)
from ..live import serve

KIT = Path(__file__).resolve().parents[2] / "clients" / "python"
EXAMPLE = KIT / "examples" / "flask_host.py"
# Tests about the kit's own checks need one real tvwidget, not one per database engine.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
TICKET = {"id": "HD-7", "subject": "Printer offline", "requester": {"name": "Jo Doe", "email": "jo@example.com"},
          "category": "Printer", "type": "Incident", "priority": "High", "source": "Email", "status": "open"}


class HTTPClient:
    """What ``conftest.Widget`` drives, over real HTTP: the widget's own requests from its frame."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()

    def post(self, path, data=None, headers=None):
        return self.session.post(self.base_url + path, data=data, headers=headers, timeout=30)


def launch_widget(base_url: str, token: str) -> Widget:
    """Launch the widget the way embed.js does: the token POSTed, never in a URL."""
    browser = HTTPClient(base_url)
    response = browser.session.post(base_url + "/embed/widget", data={"token": token}, timeout=30)
    assert response.status_code == 200, response.text
    return Widget(browser, response.text)


class Recorder:
    """WSGI middleware in front of the example host: keeps each webhook delivery's raw bytes and headers."""

    def __init__(self):
        self.app = None
        self.deliveries = []

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/hooks/tvwidget":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            self.deliveries.append({"body": body, "signature": environ.get("HTTP_X_TVWIDGET_SIGNATURE"),
                                    "delivery": environ.get("HTTP_X_TVWIDGET_DELIVERY")})
        return self.app(environ, start_response)

    def wait_for(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.deliveries) >= count, f"tvwidget delivered {len(self.deliveries)} of {count} events"
        return self.deliveries


class Stage:
    """tvwidget and the example host, each on its own loopback port, wired together."""

    def __init__(self, tvwidget_url, host_url, host, recorder):
        self.tvwidget_url, self.host_url, self.host, self.recorder = tvwidget_url, host_url, host, recorder
        self.api = tv.HostClient(tvwidget_url, HOST_API_KEY, timeout=30)


def load_example_host():
    """Import the example host afresh (it reads its settings from the environment at import)."""
    spec = importlib.util.spec_from_file_location("tvwidget_example_host", EXAMPLE)
    host = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host)
    return host


@pytest.fixture
def stage(app_factory, monkeypatch):
    recorder = Recorder()
    with serve(recorder) as host_url:
        app = app_factory(HOST_WEBHOOK_URL=host_url + "/hooks/tvwidget")
        connect(app)
        with serve(app) as tvwidget_url:
            monkeypatch.setenv("TVWIDGET_URL", tvwidget_url)
            monkeypatch.setenv("TVWIDGET_EMBED_SECRET", EMBED_SECRET)
            monkeypatch.setenv("TVWIDGET_HOST_API_KEY", HOST_API_KEY)
            host = load_example_host()
            recorder.app = host.app
            stage = Stage(tvwidget_url, host_url, host, recorder)
            yield stage
            stage.api.close()


def test_importing_the_kit_never_imports_flask():
    probe = ("import sys, tvwidget_host; "
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'tvwidget')); "
             "print(bad)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_kit_depends_on_pyjwt_and_requests_only():
    project = tomllib.loads((KIT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "tvwidget-host"
    assert sorted(re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower() for dep in project["dependencies"]) == \
        ["pyjwt", "requests"]


# -- launch tokens ---------------------------------------------------------------------------------

@SQLITE_ONLY
def test_a_signed_token_launches_the_widget_and_an_admin_token_opens_the_admin_area(app):
    connect(app)
    with serve(app) as base_url:
        token = tv.sign_launch_token(EMBED_SECRET, sub="42", name="Alex Morgan", email="alex@helpdesk.example",
                                     ticket=TICKET, locale="ja", tz="Asia/Tokyo")
        widget = launch_widget(base_url, token)
        assert widget.state() == "idle"
        assert 'lang="ja"' in widget.html
        again = requests.post(base_url + "/embed/widget", data={"token": token}, timeout=30)
        assert again.status_code == 401  # each token works once: the kit gives each its own jti

        admin = tv.sign_launch_token(EMBED_SECRET, sub="1", name="Ada Admin", email="ada@helpdesk.example",
                                     role="admin")
        page = requests.get(base_url + "/embed/admin", params={"token": admin}, timeout=30, allow_redirects=False)
        assert page.status_code == 303 and page.headers["Location"].endswith("/embed/admin/settings")
        refused = requests.get(base_url + "/embed/admin", timeout=30, allow_redirects=False, params={
            "token": tv.sign_launch_token(EMBED_SECRET, sub="2", name="Al", email="al@example.com", role="agent")})
        assert refused.status_code in (401, 403)


def test_the_token_carries_the_contract_claims():
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    token = tv.sign_launch_token(EMBED_SECRET, sub="42", name="Alex", email="alex@example.com", ticket={"id": 7},
                                 ttl=3600, jti="once", now=now)
    claims = jwt.decode(token, EMBED_SECRET, algorithms=["HS256"], audience="tvwidget",
                        options={"verify_exp": False, "verify_iat": False})
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert claims == {"aud": "tvwidget", "sub": "42", "name": "Alex", "email": "alex@example.com", "role": "agent",
                      "ticket": {"id": "7", "subject": ""}, "iat": int(now.timestamp()),
                      "exp": int(now.timestamp()) + 3600, "jti": "once"}
    first, second = (jwt.decode(tv.sign_launch_token(EMBED_SECRET, sub="1", name="", email=""), EMBED_SECRET,
                                algorithms=["HS256"], audience="tvwidget")["jti"] for _ in range(2))
    assert first != second


@pytest.mark.parametrize("change, complaint", [
    ({"secret": "short"}, "shorter than 32"),
    ({"sub": ""}, "sub must not be empty"),
    ({"sub": 42}, "sub must be a string"),
    ({"role": "boss"}, "role must be one of"),
    ({"ttl": 3601}, "ttl must be whole seconds from 1 to 3600"),
    ({"ttl": 0}, "ttl must be"),
    ({"locale": "fr"}, "locale must be one of"),
    ({"tz": "Mars/Olympus"}, "not an IANA time zone"),
    ({"ticket": {"subject": "no id"}}, "ticket['id'] must be a string"),
    ({"ticket": {"id": "x" * 65}}, "ticket['id'] is longer than 64"),
    ({"ticket": {"id": "1", "requestor": {}}}, "unknown keys ['requestor']"),
    ({"ticket": {"id": "1", "requester": "jo@example.com"}}, "ticket['requester'] must be a dict"),
    ({"ticket": {"id": "1", "priority": 1}}, "ticket['priority'] must be a string"),
    ({"now": datetime(2026, 1, 1)}, "aware datetime"),
])
def test_sign_launch_token_refuses_what_tvwidget_would_refuse(change, complaint):
    arguments = {"secret": EMBED_SECRET, "sub": "42", "name": "Alex", "email": "alex@example.com",
                 "ticket": TICKET} | change
    with pytest.raises(ValueError, match=re.escape(complaint)):
        tv.sign_launch_token(arguments.pop("secret"), **arguments)


# -- the example host against a real tvwidget ---------------------------------------------------------

def test_the_example_host_refuses_to_close_while_a_case_is_open_and_gets_the_comment_by_webhook(stage):
    api = stage.api
    assert api.put_ticket("HD-7", TICKET) == {"id": "HD-7", "status": "saved"}
    assert api.service_case("HD-7") is None

    # The agent opens the ticket in the example host: its page carries a token tvwidget accepts.
    page = requests.get(stage.host_url + "/tickets/HD-7", timeout=30).text
    token = re.search(r'data-tvwidget-token="([^"]+)"', page).group(1)
    assert f'src="{stage.tvwidget_url}/embed/embed.js"' in page
    widget = launch_widget(stage.tvwidget_url, token)
    assert widget.play().status_code == 200 and widget.state() == "open"
    code = widget.field("session-code")

    case = api.service_case("HD-7")
    assert case["code"] == code and case["state"] == "open" and case["opened_by"]["id"] == "42"
    with pytest.raises(tv.ActiveServiceCase) as refusal:
        api.close_ticket("HD-7")
    assert refusal.value.status == 409 and refusal.value.code == "active_service_case"
    assert refusal.value.case["code"] == code and code in refusal.value.message
    refused = requests.post(stage.host_url + "/tickets/HD-7/close", timeout=30)
    assert refused.status_code == 409 and refused.json()["session_code"] == code
    assert "Stop it in the ticket's TeamViewer widget" in refused.json()["error"]

    opened = stage.recorder.wait_for(1)[0]
    assert json.loads(opened["body"])["event"] == "service_case.opened"

    assert widget.post("stop", {"outcome": "resolved", "note": "Driver reinstalled"}).status_code == 200
    assert widget.state() == "idle"
    assert api.service_case("HD-7") is None
    assert requests.post(stage.host_url + "/tickets/HD-7/close", timeout=30).json() == {"closed": "HD-7"}
    assert api.close_ticket("HD-7") == {"id": "HD-7", "status": "closed"}

    comments = api.comments("HD-7")
    assert [c["kind"] for c in comments] == ["closed"] and "Driver reinstalled" in comments[0]["body"]
    closed = stage.recorder.wait_for(2)[1]
    event = tv.verify_webhook(closed["body"], closed["signature"], EMBED_SECRET)
    assert event.id == closed["delivery"] and event.type == "service_case.closed" and event.ticket_id == "HD-7"
    assert event.comment == comments[0]["body"] and event.service_case["code"] == code
    assert event.service_case["outcome"] == "resolved"
    assert abs(event.occurred_at - datetime.now(UTC)) < timedelta(minutes=1)
    # The example host verified both deliveries itself and put the comment on its timeline.
    deadline = time.monotonic() + 5
    while len(stage.host.seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stage.host.timeline == [("HD-7", comments[0]["body"])]
    assert stage.host.seen == {d["delivery"] for d in stage.recorder.deliveries}

    today = datetime.now(UTC).date()
    report = api.report(today, today.isoformat(), technician="42")
    assert report["total_sessions"] == 1 and [row["value"] for row in report["by_technician"]] == ["42"]
    assert api.report(today, today, technician="someone-else")["total_sessions"] == 0


@SQLITE_ONLY
def test_webhook_forged_stale_and_duplicate_deliveries_are_refused(stage):
    api = stage.api
    api.put_ticket("HD-8", TICKET | {"id": "HD-8"})
    widget = launch_widget(stage.tvwidget_url, tv.sign_launch_token(
        EMBED_SECRET, sub="42", name="Alex", email="alex@example.com", ticket=TICKET | {"id": "HD-8"}))
    widget.play()
    delivery = stage.recorder.wait_for(1)[0]
    body, header = delivery["body"], delivery["signature"]
    event = tv.verify_webhook(body, header, EMBED_SECRET)
    assert header == tv.signature(body, EMBED_SECRET)

    forged_body = body.replace(b'"HD-8"', b'"HD-9"')
    for forged in [(forged_body, header, EMBED_SECRET), (body, header, EMBED_SECRET + "x"),
                   (body, None, EMBED_SECRET), (body, "", EMBED_SECRET), (body, header.upper(), EMBED_SECRET),
                   (body, header[len("sha256="):], EMBED_SECRET), (body, "sha256=" + "0" * 64, EMBED_SECRET),
                   (body, "sha256=ü", EMBED_SECRET)]:
        with pytest.raises(tv.InvalidSignature):
            tv.verify_webhook(*forged)
    with pytest.raises(TypeError, match="bytes"):
        tv.verify_webhook(body.decode(), header, EMBED_SECRET)

    # Age: off by default; with max_age, refused once older, and when from the future.
    later = event.occurred_at + timedelta(days=30)
    assert tv.verify_webhook(body, header, EMBED_SECRET, now=later).id == event.id
    assert tv.verify_webhook(body, header, EMBED_SECRET, max_age=60, now=event.occurred_at + timedelta(seconds=59))
    with pytest.raises(tv.StaleDelivery) as stale:
        tv.verify_webhook(body, header, EMBED_SECRET, max_age=60, now=event.occurred_at + timedelta(seconds=61))
    assert stale.value.event.id == event.id
    with pytest.raises(tv.StaleDelivery, match="future"):
        tv.verify_webhook(body, header, EMBED_SECRET, max_age=tv.RETRY_WINDOW,
                          now=event.occurred_at - timedelta(minutes=10))

    # Duplicates: a container or a callable says the id was processed.
    with pytest.raises(tv.DuplicateDelivery) as duplicate:
        tv.verify_webhook(body, header, EMBED_SECRET, seen={event.id})
    assert duplicate.value.event.id == event.id
    with pytest.raises(tv.DuplicateDelivery):
        tv.verify_webhook(body, header, EMBED_SECRET, seen=lambda event_id: event_id == event.id)
    assert tv.verify_webhook(body, header, EMBED_SECRET, seen=set()).id == event.id

    # Replayed and forged to the example host: acknowledged once, refused, nothing added twice.
    deadline = time.monotonic() + 5
    while event.id not in stage.host.seen and time.monotonic() < deadline:
        time.sleep(0.02)
    headers = {tv.WEBHOOK_SIGNATURE_HEADER: header, "Content-Type": "application/json"}
    replay = requests.post(stage.host_url + "/hooks/tvwidget", data=body, headers=headers, timeout=30)
    assert replay.status_code == 204
    forged = requests.post(stage.host_url + "/hooks/tvwidget", data=forged_body, headers=headers, timeout=30)
    assert forged.status_code == 400 and "does not match" in forged.text
    assert stage.host.seen == {event.id}


def test_a_signed_body_that_is_not_an_event_is_refused():
    for body in [b"not json", b"[1]", b'{"id": "1"}', json.dumps(
            {"id": "1", "event": "service_case.closed", "ticket_id": "T", "occurred_at": "yesterday",
             "service_case": {}, "comment": None}).encode()]:
        with pytest.raises(tv.InvalidPayload):
            tv.verify_webhook(body, tv.signature(body, EMBED_SECRET), EMBED_SECRET)


# -- faults and refusals of the host API --------------------------------------------------------------

@SQLITE_ONLY
def test_a_wrong_key_is_unauthorized_and_bad_data_a_bad_request(app):
    with serve(app) as base_url:
        with tv.HostClient(base_url, "not-the-key", timeout=30) as stranger, pytest.raises(tv.Unauthorized) as exc:
            stranger.service_case("T-1")
        assert exc.value.status == 401 and exc.value.code == "unauthorized"
        assert "not-the-key" not in repr(exc.value) and "not-the-key" not in repr(stranger)

        api = tv.HostClient(base_url + "/", HOST_API_KEY, timeout=30)
        with pytest.raises(tv.BadRequest) as bad:
            api.report(date(2026, 2, 1), date(2026, 1, 1))
        assert bad.value.status == 400 and bad.value.code == "invalid_parameter"
        assert bad.value.message == "'from' must not be after 'to'."
        with pytest.raises(tv.BadRequest, match="too long"):
            api.report(date(2026, 1, 1), date(2026, 1, 1), technician="x" * 101)
        with pytest.raises(ValueError, match=re.escape("ticket has unknown keys ['requestor']")):
            api.put_ticket("T-1", {"requestor": {"name": "Jo"}})  # tvwidget would ignore the key: the kit refuses
        with pytest.raises(ValueError, match="differs from ticket_id"):
            api.put_ticket("T-1", {"id": "T-2"})
        with pytest.raises(ValueError, match="date_from must be a date"):
            api.report(datetime(2026, 1, 1, tzinfo=UTC), date(2026, 1, 1))

        # An id with a space, a slash and a non-ASCII letter reaches tvwidget as one id.
        odd = "Q 1/ü"
        assert api.put_ticket(odd, {"subject": "odd"}) == {"id": odd, "status": "saved"}
        assert api.close_ticket(odd) == {"id": odd, "status": "closed"}
        assert api.comments(odd) == []

        # A 404 that is not "no active case" is NotFound, never mistaken for "no case".
        lost = tv.HostClient(base_url + "/api/v1/misplaced", HOST_API_KEY, timeout=30)
        with pytest.raises(tv.NotFound) as missing:
            lost.service_case("T-1")
        assert missing.value.code == "not_found"


def test_the_example_host_refuses_a_close_when_tvwidget_cannot_be_reached(monkeypatch):
    monkeypatch.setenv("TVWIDGET_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("TVWIDGET_EMBED_SECRET", EMBED_SECRET)
    monkeypatch.setenv("TVWIDGET_HOST_API_KEY", HOST_API_KEY)
    response = load_example_host().app.test_client().post("/tickets/HD-7/close")
    assert response.status_code == 503 and "cannot be reached" in response.json["error"]


def test_no_answer_or_a_garbage_answer_is_unavailable():
    with pytest.raises(tv.Unavailable) as refused:
        tv.HostClient(f"http://127.0.0.1:{free_port()}", HOST_API_KEY).service_case("T-1")
    assert refused.value.code == "unreachable" and refused.value.status is None

    release = threading.Event()
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.expect_request("/api/v1/tickets/T-1/service-case").respond_with_data("<html>hi</html>", 200)
    server.expect_request("/api/v1/tickets/T-1/close").respond_with_data("Bad gateway", 502)
    server.expect_request("/api/v1/tickets/T-1/comments").respond_with_json({"no": "comments"})
    server.expect_request("/api/v1/tickets/T-3/comments").respond_with_data(
        "", 308, headers={"Location": "https://tvwidget.example/api/v1/tickets/T-3/comments"})
    server.expect_request("/api/v1/tickets/T-2/close").respond_with_handler(
        lambda request: (release.wait(5), Response("{}", 200))[1])
    server.start()
    try:
        api = tv.HostClient(server.url_for("/"), HOST_API_KEY, timeout=0.5)
        with pytest.raises(tv.Unavailable) as garbage:
            api.service_case("T-1")
        assert garbage.value.code == "bad_reply" and garbage.value.status == 200
        with pytest.raises(tv.Unavailable) as gateway:
            api.close_ticket("T-1")
        assert gateway.value.status == 502
        with pytest.raises(tv.Unavailable):
            api.comments("T-1")
        with pytest.raises(tv.Unavailable, match="redirected GET .* to https://tvwidget.example/") as moved:
            api.comments("T-3")  # an http:// base_url behind an https redirect: the key is not sent on
        assert moved.value.code == "redirected" and moved.value.status == 308
        started = time.monotonic()
        with pytest.raises(tv.Unavailable) as slow:
            api.close_ticket("T-2")
        assert slow.value.code == "timeout" and time.monotonic() - started < 3
    finally:
        release.set()
        server.clear()
        server.stop()


# -- the curl/openssl recipe in docs/host-contract.md, run as written ----------------------------------

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "host-contract.md"


def recipe(name: str) -> str:
    """Return the shell block that follows ``<!-- recipe: name -->`` in the contract document."""
    match = re.search(rf"<!-- recipe: {name} -->\n```sh\n(.*?)```", CONTRACT.read_text(), re.S)
    assert match, f"docs/host-contract.md has no recipe {name!r}"
    return match.group(1)


def run_recipe(name: str, stage, tmp_path, **env) -> str:
    for tool in ("bash", "openssl", "curl"):
        if shutil.which(tool) is None:
            skip_or_fail(f"the shell recipe needs {tool}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe(name)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "TVWIDGET_URL": stage.tvwidget_url, "TVWIDGET_EMBED_SECRET": EMBED_SECRET,
             "TVWIDGET_HOST_API_KEY": HOST_API_KEY, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


@SQLITE_ONLY
def test_the_shell_recipe_signs_a_token_tvwidget_accepts_guards_the_close_and_verifies_a_webhook(stage, tmp_path):
    assert run_recipe("token", stage, tmp_path).strip() == "200"

    widget = launch_widget(stage.tvwidget_url, tv.sign_launch_token(
        EMBED_SECRET, sub="42", name="Alex", email="alex@example.com", ticket=TICKET))
    widget.play()
    refused, comments = run_recipe("api", stage, tmp_path).splitlines()
    assert json.loads(refused)["error"] == "active_service_case"
    assert json.loads(refused)["service_case"]["code"] == widget.field("session-code")
    assert json.loads(comments) == {"comments": []}

    delivery = stage.recorder.wait_for(1)[0]
    (tmp_path / "body.json").write_bytes(delivery["body"])
    assert run_recipe("webhook", stage, tmp_path, SIGNATURE=delivery["signature"]).strip() == "signature valid"
    (tmp_path / "body.json").write_bytes(delivery["body"].replace(b"HD-7", b"HD-8"))
    assert run_recipe("webhook", stage, tmp_path, SIGNATURE=delivery["signature"]).strip() == "forged"


def test_the_readme_shows_the_example_host_the_suite_runs():
    readme = (KIT / "README.md").read_text()
    assert "```python\n" + EXAMPLE.read_text() + "```" in readme


KIT_SMOKE = '''
import importlib.util, sys
import tvwidget_host as tv
assert tv.__file__.startswith(sys.argv[1]), tv.__file__
assert importlib.util.find_spec("flask") is None, "flask came along with the kit"
token = tv.sign_launch_token("s" * 32, sub="1", name="A", email="a@example.com", ticket={"id": "T-1"})
body = b'{"id":"e1","event":"service_case.opened","occurred_at":"2026-12-03T10:00:00Z","ticket_id":"T-1",' \\
       b'"service_case":{"code":"s1"},"comment":null}'
event = tv.verify_webhook(body, tv.signature(body, "s" * 32), "s" * 32)
print("KIT SMOKE OK", event.type, len(token.split(".")))
'''


@pytest.mark.slow
def test_the_kit_builds_a_wheel_that_installs_with_only_its_two_dependencies(tmp_path):
    source, dist = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(KIT, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)]
    result = None
    if importlib.util.find_spec("setuptools"):
        result = subprocess.run([*command, "--no-isolation"], capture_output=True, text=True, timeout=300)
    if result is None or result.returncode != 0:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)  # isolated: from the index
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (wheel,) = dist.glob("tvwidget_host-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {"tvwidget_host/__init__.py", "tvwidget_host/client.py", "tvwidget_host/tokens.py",
            "tvwidget_host/webhook.py", "tvwidget_host/errors.py", "tvwidget_host/py.typed"} <= names
    assert not [n for n in names if n.startswith(("tvwidget/", "examples/", "tests/"))]
    requires = sorted(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                      if line.startswith("Requires-Dist:"))
    assert requires == ["PyJWT>=2.4", "requests>=2.28"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TVWIDGET_", "VIRTUAL_ENV", "PYTHONHOME"))}
    env |= {"PYTHONPATH": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    smoke = subprocess.run([python, "-c", KIT_SMOKE, str(venv)], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert smoke.returncode == 0, smoke.stdout[-4000:] + smoke.stderr[-4000:]
    assert "KIT SMOKE OK service_case.opened 3" in smoke.stdout
