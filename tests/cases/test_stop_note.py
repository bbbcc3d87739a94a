"""Stop asks for a note and an outcome; both reach the comment, the audit log and the case."""
import json

import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import AuditEvent, Comment, ServiceCase

from ..conftest import HOST_API_KEY

API = {"Authorization": f"Bearer {HOST_API_KEY}"}


def _get(widget, path, **params):
    return widget.client.get(path, query_string=params,
                             headers={"X-TVWidget-Credential": widget.credential, "HX-Request": "true"})


def _case(app):
    with app.app_context():
        case = db.session.scalar(sa.select(ServiceCase))
        db.session.expunge(case)
        return case


def test_stop_opens_a_form_with_note_outcome_confirm_and_cancel(connected_app, launch):
    widget = launch()
    widget.play()
    assert 'data-tvwidget-action="stop"' in widget.html and 'hx-get="/embed/widget/stop"' in widget.html
    response = _get(widget, "/embed/widget/stop")
    assert response.status_code == 200
    form = response.text
    assert 'data-tvwidget-action="confirm-stop"' in form and 'hx-post="/embed/widget/stop"' in form
    assert 'name="note"' in form and 'maxlength="1000"' in form
    for outcome in ("resolved", "unresolved", "unknown"):
        assert f'name="outcome" value="{outcome}"' in form
    assert 'value="unknown" checked' in form
    assert 'data-tvwidget-action="cancel-stop"' in form
    assert _case(connected_app).state == "open"  # looking at the form changes nothing


def test_confirmed_stop_puts_outcome_and_note_in_comment_audit_and_case(connected_app, launch, client):
    widget = launch()
    widget.play()
    note = "Reinstalled <b>Outlook</b> & cleared the cache\x07\x1b.\r\nUser happy."
    response = widget.post("stop", {"note": note, "outcome": "resolved"})
    assert response.status_code == 200 and widget.state() == "idle"
    case = _case(connected_app)
    assert case.state == "closed" and case.outcome == "resolved"
    assert case.note == "Reinstalled <b>Outlook</b> & cleared the cache.\nUser happy."
    body = client.get("/api/v1/tickets/T-1/comments", headers=API).json["comments"][0]["body"]
    assert "Outcome: Resolved" in body
    assert "Note: Reinstalled <b>Outlook</b> & cleared the cache.\nUser happy." in body  # plain text in the API
    with connected_app.app_context():
        detail = json.loads(db.session.scalar(sa.select(AuditEvent.detail).where(AuditEvent.kind == "case_closed")))
    assert detail["outcome"] == "resolved" and detail["note"].startswith("Reinstalled <b>")
    # Where it is shown as HTML, it is escaped.
    history = _get(widget, "/embed/widget/history").text
    assert "Reinstalled &lt;b&gt;Outlook&lt;/b&gt; &amp; cleared" in history
    assert "<b>Outlook</b>" not in history


def test_stop_without_fields_keeps_working_with_outcome_unknown(connected_app, launch):
    widget = launch()
    widget.play()
    assert widget.stop().status_code == 200
    case = _case(connected_app)
    assert case.state == "closed" and case.outcome == "unknown" and case.note is None
    with connected_app.app_context():
        assert "Outcome: Unknown" in db.session.scalar(sa.select(Comment.body))


def test_too_long_note_or_unknown_outcome_is_refused_and_the_case_stays_open(connected_app, launch):
    widget = launch()
    widget.play()
    response = widget.post("stop", {"note": "x" * 1001, "outcome": "resolved"})
    assert response.status_code == 422
    assert 'role="alert"' in response.text and "at most 1000 characters" in response.text
    assert 'data-tvwidget-action="confirm-stop"' in response.text and "x" * 1001 in response.text
    response = widget.post("stop", {"note": "ok", "outcome": "fixed-ish"})
    assert response.status_code == 422 and 'role="alert"' in response.text
    assert _case(connected_app).state == "open"
    # Exactly 1000 characters is fine.
    assert widget.post("stop", {"note": "y" * 1000, "outcome": "unresolved"}).status_code == 200
    assert _case(connected_app).outcome == "unresolved"
