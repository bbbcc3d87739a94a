"""Launch tokens and the widget credential (host contract; reliability checklist 1-7, 11-12)."""
import base64
import hashlib
import json
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime

import jwt
import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings, strategies as st
from itsdangerous import URLSafeTimedSerializer
from pytest_httpserver import HTTPServer

from tvwidget.extensions import db
from tvwidget.host import tokens as host
from tvwidget.storage.models import ServiceCase, Ticket

from ..conftest import EMBED_SECRET, connect, make_token, open_widget, ticket_claim
from ..helpers import table_checksums
from ..live import serve

LEEWAY = 10  # LAUNCH_TOKEN_LEEWAY's default


def _launch(client, token):
    return client.get("/embed/widget", query_string={"token": token})


def test_valid_token_opens_the_widget_and_stores_the_ticket(app, client):
    response = _launch(client, make_token(ticket=ticket_claim("T-7", subject="Printer jam")))
    assert response.status_code == 200
    assert 'id="tvwidget-widget"' in response.text
    with app.app_context():
        assert db.session.get(Ticket, "T-7").subject == "Printer jam"


def test_post_launch_keeps_the_token_out_of_the_url(client):
    response = client.post("/embed/widget", data={"token": make_token()})
    assert response.status_code == 200 and 'id="tvwidget-widget"' in response.text


def _unsigned(claims: dict, header: dict) -> str:
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}."


@pytest.mark.parametrize("token, reason", [
    (lambda: make_token(secret="another-secret-of-sufficient-length-0123456789"), "forged"),
    (lambda: make_token()[:-4] + "AAAA", "altered signature"),
    (lambda: make_token()[:40], "truncated"),
    (lambda: make_token(iat=int(time.time()) - 4000, exp=int(time.time()) - 400), "expired"),
    (lambda: make_token(iat=int(time.time()) + 600, exp=int(time.time()) + 1200), "issued in the future"),
    (lambda: make_token(exp=int(time.time()) + 7200), "lives longer than an hour"),
    (lambda: make_token(aud="another-app"), "wrong audience"),
    (lambda: make_token(aud=None), "no audience"),
    (lambda: make_token(exp=None), "no expiry"),
    (lambda: make_token(role="customer"), "unknown role"),
    (lambda: make_token(ticket={"subject": "no id"}), "ticket without id"),
    (lambda: make_token(ticket=None), "widget token without ticket"),
    (lambda: _unsigned({"aud": "tvwidget", "sub": "x", "role": "admin", "iat": int(time.time()),
                        "exp": int(time.time()) + 60}, {"alg": "none", "typ": "JWT"}), "alg none"),
    (lambda: "x" * 9000, "oversized"),
    (lambda: "", "missing"),
])
def test_bad_launch_tokens_get_401_without_traceback_or_cookie(app, client, token, reason):
    response = _launch(client, token())
    assert response.status_code == 401, reason
    assert 'role="alert"' in response.text
    assert "Traceback" not in response.text
    assert "Set-Cookie" not in response.headers
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 0


def test_hs_token_signed_with_an_rs_public_key_is_refused(client):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    rs_token = make_token(secret=key, algorithm="RS256")
    assert _launch(client, rs_token).status_code == 401
    # HS256 keyed with the public key: PyJWT refuses to even make it, so craft it with hmac.
    import hashlib
    import hmac as hmac_module

    header, payload, _ = make_token().split(".")
    signature = hmac_module.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert _launch(client, forged).status_code == 401


def test_a_token_is_accepted_once(client):
    token = make_token()
    assert _launch(client, token).status_code == 200
    replay = _launch(client, token)
    assert replay.status_code == 401 and "already used" in replay.text


def test_a_token_without_jti_is_accepted_once_too(client):
    token = make_token(jti=None)
    assert _launch(client, token).status_code == 200
    assert _launch(client, token).status_code == 401


def test_two_concurrent_launches_with_one_token_let_exactly_one_in(app):
    token = make_token()
    barrier = threading.Barrier(2)
    statuses = []

    def go():
        client = app.test_client()
        barrier.wait()
        statuses.append(_launch(client, token).status_code)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401]


def test_state_changes_need_the_widget_credential(connected_app, client):
    response = client.post("/embed/widget/play", headers={"HX-Request": "true"})
    assert response.status_code == 403 and 'role="alert"' in response.text
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 0


def test_forged_credential_is_refused(connected_app, launch):
    widget = launch()
    response = widget.post("play", **{"X-TVWidget-Credential": widget.credential[:-3] + "abc"})
    assert response.status_code == 403


def test_expired_credential_asks_for_a_reload(connected_app, launch):
    from freezegun import freeze_time

    widget = launch()
    with freeze_time(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 7200))):
        response = widget.post("play")
    assert response.status_code == 401 and "Reload the ticket page" in response.text


def test_cross_site_post_is_refused_even_with_a_credential(connected_app, launch):
    widget = launch()
    response = widget.post("play", **{"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 0


def test_the_credential_binds_the_ticket_so_form_ids_cannot_switch_it(connected_app, launch):
    widget_a = launch(ticket=ticket_claim("A"))
    launch(ticket=ticket_claim("B"))
    widget_a.post("play", {"ticket_id": "B", "ticket": "B"})
    with connected_app.app_context():
        assert db.session.scalars(sa.select(ServiceCase.ticket_id)).all() == ["A"]


def test_get_never_changes_state(connected_app, launch, client):
    widget = launch()
    response = client.get("/embed/widget/play", headers={"X-TVWidget-Credential": widget.credential})
    assert response.status_code == 405
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 0


def test_locale_comes_from_the_token_else_the_browser(client):
    assert 'lang="ja"' in _launch(client, make_token(locale="ja")).text
    token = make_token(locale=None)
    assert 'lang="ja"' in client.get("/embed/widget", query_string={"token": token},
                                     headers={"Accept-Language": "ja,en;q=0.5"}).text
    assert 'lang="en"' in _launch(client, make_token(locale=None)).text




def test_spent_tokens_are_swept_once_they_expire(app, client, monkeypatch):
    from tvwidget.host import tokens as host
    from tvwidget.storage.models import UsedLaunchToken

    monkeypatch.setattr(host, "SWEEP_EVERY", 10**12)
    old = make_token(iat=int(time.time()) - 3000, exp=int(time.time()) + 20)
    assert _launch(client, old).status_code == 200
    from freezegun import freeze_time

    with freeze_time(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 120)), tick=True):
        monkeypatch.setattr(host, "SWEEP_EVERY", 1)
        response = _launch(client, make_token())
        assert response.status_code == 200
        with app.app_context():  # the sweep runs once the response has gone out, not before
            assert db.session.scalar(sa.select(sa.func.count()).select_from(UsedLaunchToken)) == 2
        response.close()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UsedLaunchToken)) == 1


def test_a_token_with_a_stray_character_in_a_segment_is_refused(client):
    header, payload, signature = make_token().split(".")
    for forged in (f"{header}.{payload}!.{signature}", f"{header}.{payload}.{signature}===",
                   f"{header}=.{payload}.{signature}"):
        response = _launch(client, forged)
        assert response.status_code == 401
        assert "The launch token is not valid" in response.text


def test_a_compressed_credential_is_read(connected_app, launch):
    widget = launch()
    with connected_app.app_context():
        old = URLSafeTimedSerializer(connected_app.config["SECRET_KEY"], salt="tvwidget.widget-credential")
        agent = {"id": "agent-1", "name": "Alex Morgan", "email": "alex@helpdesk.example", "role": "agent",
                 "locale": "en", "tz": "Asia/Tokyo"}
        compressed = old.dumps({"a": agent | {"name": "Alex Morgan " * 20}, "t": "T-1"})
        assert compressed.startswith(".")
        read = host.read_credential(compressed)
    assert (read.agent.name, read.ticket_id, read.host_origin) == ("Alex Morgan " * 20, "T-1", None)
    response = widget.client.get("/embed/widget/panel", headers={"X-TVWidget-Credential": compressed,
                                                                   "HX-Request": "true"})
    assert response.status_code == 200 and 'data-tvwidget-state="idle"' in response.text


# ==========================================================================================================
# 1-4. Launch tokens
# ==========================================================================================================

def _part(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _altered(token: str, **claims) -> str:
    """The token with claims changed and the original signature kept."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join((header, _part(body | claims), signature))


FORGED = {
    "wrong key": lambda **c: make_token(secret="another-installation-secret-0123456789abcdef", **c),
    "altered claim": lambda **c: _altered(make_token(**c), sub="someone-else", role="admin"),
    "truncated": lambda **c: make_token(**c)[:-12],
}


def _signed_by_hand(token: str, alg: str, digest) -> str:
    """The token's claims under ``alg``, keyed with the right secret (PyJWT will not make it: key too short)."""
    import hmac

    header = _part({"alg": alg, "typ": "JWT"})
    signing_input = f"{header}.{token.split('.')[1]}"
    signature = hmac.new(EMBED_SECRET.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _refusals(caplog):
    return [r for r in caplog.records if r.name == "tvwidget.web.security" and "launch refused" in r.getMessage()]


@pytest.mark.parametrize("where", ["widget", "admin"])
@pytest.mark.parametrize("forgery", FORGED)
def test_1_forged_launch_token_is_401_without_cookie_or_rows_and_is_logged(app, caplog, forgery, where):
    caplog.set_level(logging.INFO)
    claims = {} if where == "widget" else {"role": "admin", "ticket": None}
    token = FORGED[forgery](**claims)
    before = table_checksums(app)
    assert sum(count for count, _ in before.values()) == 0
    client = app.test_client()
    for response in (client.get(f"/embed/{where}", query_string={"token": token}),
                     client.post(f"/embed/{where}", data={"token": token})):
        assert response.status_code == 401, response.text
        assert "Set-Cookie" not in response.headers
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    assert table_checksums(app) == before  # no ticket, no spent jti, no session, no audit row: nothing
    # The refusal is in the log (twice: GET and POST), tied to the token by a fingerprint, never the token.
    refusals = _refusals(caplog)
    assert len(refusals) == 2 and all(r.levelno == logging.WARNING for r in refusals)
    assert all(hashlib.sha256(token.encode()).hexdigest()[:12] in r.getMessage() for r in refusals)
    assert all("HTTP 401" in r.getMessage() for r in refusals)
    assert token not in caplog.text and token.split(".")[-1] not in caplog.text


def test_1_an_agent_token_on_the_admin_launch_is_logged_as_refused(app, caplog):
    caplog.set_level(logging.INFO)
    response = app.test_client().get("/embed/admin", query_string={"token": make_token(ticket=None)})
    assert response.status_code == 403
    assert len(_refusals(caplog)) == 1 and "HTTP 403" in _refusals(caplog)[0].getMessage()


def test_1_accepted_launches_are_not_logged_as_refused(app, caplog):
    caplog.set_level(logging.INFO)
    client = app.test_client()
    assert client.get("/embed/widget", query_string={"token": make_token()}).status_code == 200
    assert client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)}).status_code == 303
    assert _refusals(caplog) == []


NOW = 1_900_000_000  # a fixed instant; the app's clock is frozen on it


@pytest.mark.parametrize(("times", "status"), [
    ({"iat": NOW - 600, "exp": NOW - LEEWAY - 1}, 401),   # expired, 1 s beyond the leeway
    ({"iat": NOW - 600, "exp": NOW - LEEWAY + 1}, 200),   # expired, but 1 s inside the leeway
    ({"nbf": NOW + LEEWAY + 1}, 401),                      # not valid yet, 1 s beyond the leeway
    ({"nbf": NOW + LEEWAY - 1}, 200),
    ({"iat": NOW + LEEWAY + 1, "exp": NOW + 600}, 401),    # issued in the future
    ({"iat": NOW + LEEWAY - 1, "exp": NOW + 600}, 200),
    ({"iat": NOW - 3601, "exp": NOW + 1}, 401),            # stale: issued more than an hour before expiry
    ({"iat": NOW - 3599, "exp": NOW + 1}, 200),            # lifetime exactly one hour
], ids=["exp-11s", "exp-9s", "nbf+11s", "nbf+9s", "iat+11s", "iat+9s", "iat-3601s", "iat-3599s"])
def test_2_token_times_are_judged_to_the_second_around_the_leeway(app, times, status):
    claims = {"iat": NOW, "exp": NOW + 600} | times
    token = make_token(**claims)
    with freeze_time(datetime.fromtimestamp(NOW, UTC)):
        response = app.test_client().get("/embed/widget", query_string={"token": token})
    assert response.status_code == status, response.text


@pytest.fixture
def key_server():
    """Where a hostile token's ``jku`` points; it must never be asked."""
    server = HTTPServer(host="127.0.0.1")
    server.start()
    server.expect_request(re.compile(".*")).respond_with_json({"keys": []})
    yield server
    server.clear()
    server.stop()


def test_3_header_keys_are_ignored_and_the_algorithm_is_pinned(app, key_server):
    client = app.test_client()
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    jku = key_server.url_for("/.well-known/jwks.json")
    refused = {
        "RS256 with its own jwk": make_token(secret=attacker, algorithm="RS256"),
        "RS256 with embedded jwk": jwt.encode(jwt.decode(make_token(), options={"verify_signature": False}),
                                              attacker, algorithm="RS256", headers={"jwk": jwk, "kid": "x"}),
        "RS256 with jku": jwt.encode(jwt.decode(make_token(), options={"verify_signature": False}),
                                     attacker, algorithm="RS256", headers={"jku": jku, "kid": "attacker"}),
        "HS256, attacker's secret, jku": jwt.encode(
            jwt.decode(make_token(), options={"verify_signature": False}),
            "attacker-secret-0123456789abcdef0123456789", algorithm="HS256", headers={"jku": jku}),
        # Signed with the right secret, but not with the one algorithm tvwidget allows.
        "HS384, right secret": _signed_by_hand(make_token(), "HS384", hashlib.sha384),
        "HS512, right secret": _signed_by_hand(make_token(), "HS512", hashlib.sha512),
        "alg none, right claims": f"{_part({'alg': 'none', 'typ': 'JWT'})}.{make_token().split('.')[1]}.",
    }
    for name, token in refused.items():
        assert client.get("/embed/widget", query_string={"token": token}).status_code == 401, name
    # Header keys change nothing either way: the right secret with a hostile jku and kid is simply accepted.
    accepted = make_token()
    body = jwt.decode(accepted, options={"verify_signature": False})
    decorated = jwt.encode(body | {"jti": "decorated"}, EMBED_SECRET, algorithm="HS256",
                           headers={"jku": jku, "kid": "../../etc/passwd", "x5u": jku})
    assert client.get("/embed/widget", query_string={"token": decorated}).status_code == 200
    assert key_server.log == []


@pytest.mark.parametrize("audience", ["another-app", "tvwidget-staging", "TVWIDGET", "", ["other-app"], 42,
                                      "https://helpdesk.example"])
def test_4_a_token_for_another_audience_is_401(client, audience):
    assert client.get("/embed/widget", query_string={"token": make_token(aud=audience)}).status_code == 401


def test_4_a_token_from_another_installation_or_helpdesk_is_401(client):
    """Each installation has its own TVWIDGET_EMBED_SECRET: a token its helpdesk signed fails here."""
    for secret in ("secret-of-another-installation-0123456789ab", "secret-of-a-subdomain-helpdesk-0123456789"):
        token = make_token(secret=secret, iss="https://other.helpdesk.example")
        assert client.get("/embed/widget", query_string={"token": token}).status_code == 401


# ==========================================================================================================
# 6. IDOR: the widget credential alone names the ticket
# ==========================================================================================================

ID_LIKE = st.one_of(st.sampled_from(["B", "b", "B ", " B", "B\n", "%42", "../B", "B/../A", "T-1", "0", "*"]),
                    st.text(max_size=70))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(other=ID_LIKE)
def test_6_a_widget_credential_for_ticket_a_never_reaches_ticket_b(app_factory, teamviewer, other):
    # Hypothesis runs every example on the same database: each gets its own pair of tickets.
    run = os.urandom(4).hex()
    ticket_a, ticket_b = f"A-{run}", f"B-{run}"
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url, TEAMVIEWER_RETRIES=0)
    connect(app)
    b = open_widget(app, ticket=ticket_claim(ticket_b))
    b.play()
    code_b = b.field("session-code")
    a = open_widget(app, ticket=ticket_claim(ticket_a))
    calls_before = len(teamviewer.calls)
    for victim in (other, ticket_b):
        names_b = {"ticket_id": victim, "ticket": victim, "code": code_b}
        in_header = re.sub(r"[\x00-\x1f\x7f]", " ", victim)  # what an HTTP header can carry
        headers = {"X-Ticket-Id": in_header, "X-TVWidget-Ticket": in_header}
        query = "?" + "&".join(f"{key}={requests.utils.quote(value)}" for key, value in names_b.items())
        a.post("play" + query, names_b | {"idempotency_key": os.urandom(16).hex()}, **headers)
        assert a.state() == "open" and a.field("session-code") != code_b
        assert a.post("replace", names_b, **headers).status_code == 409  # B's code is not A's case
        status = a.client.get("/embed/widget/status", query_string=names_b,
                              headers={"X-TVWidget-Credential": a.credential, "HX-Request": "true"} | headers)
        assert code_b not in status.text
        history = a.client.get("/embed/widget/history", query_string=names_b,
                               headers={"X-TVWidget-Credential": a.credential} | headers)
        assert code_b not in history.text
    a.post("stop", names_b, **headers)
    assert a.state() == "idle"
    # The host API does not take a widget credential at all.
    assert a.client.post(f"/api/v1/tickets/{ticket_b}/close",
                         headers={"X-TVWidget-Credential": a.credential}).status_code == 401
    # B's case is untouched here and at TeamViewer; TeamViewer heard of A only, once to open, once to close.
    with app.app_context():
        states = dict(db.session.execute(sa.select(ServiceCase.ticket_id, ServiceCase.state).where(
            ServiceCase.ticket_id.in_([ticket_a, ticket_b]))).all())
    assert states == {ticket_a: "closed", ticket_b: "open"}
    later = teamviewer.server.log[calls_before:]
    assert [request.method for request, _ in later] == ["POST", "PUT"]
    assert json.loads(later[0][0].get_json()["custom_api"])["ticket_id"] == ticket_a
    assert code_b not in later[1][0].path


# ==========================================================================================================
# 7. The launch token in the URL stays out of logs and pages
# ==========================================================================================================

def test_7_a_launch_token_in_the_url_is_never_logged_or_shown(app, caplog):
    caplog.set_level(logging.DEBUG)
    good, admin = make_token(), make_token(role="admin", ticket=None)
    expired = make_token(iat=int(time.time()) - 4000, exp=int(time.time()) - 400)
    bodies = []
    with serve(app) as base:  # a real HTTP server, which logs every request line
        for path, token in (("/embed/widget", good), ("/embed/widget", good), ("/embed/widget", expired),
                            ("/embed/admin", admin)):
            response = requests.get(base + path, params={"token": token}, timeout=10, allow_redirects=False)
            assert response.headers["Referrer-Policy"] == "no-referrer"
            bodies.append(response.text)
    assert "GET /embed/widget?token=[redacted]" in caplog.text  # the request lines were logged, redacted
    for token in (good, admin, expired):
        assert token not in caplog.text and token.split(".")[2] not in caplog.text
        assert all(token not in body for body in bodies)
