"""A case past its valid-until is over everywhere: widget, host API, reconcile; TeamViewer hears only the close."""
from datetime import timedelta

from freezegun import freeze_time

from ..conftest import connect, open_widget
from ..fake_teamviewer import FakeTeamViewer
from ..helpers import API


def test_32_after_the_expiry_the_case_is_over_everywhere_and_teamviewer_hears_only_the_close(app_factory, smtp):
    fake = FakeTeamViewer(valid_for=timedelta(minutes=30)).start()
    try:
        with freeze_time("2030-03-01 09:00:00", tick=True) as clock:
            app = app_factory(TEAMVIEWER_API_URL=fake.url, TEAMVIEWER_RETRIES=0)
            connect(app)
            widget = open_widget(app)
            widget.play()
            code = widget.field("session-code")
            api = app.test_client()
            assert api.post("/api/v1/tickets/T-1/close", headers=API).status_code == 409

            clock.move_to("2030-03-01 09:30:01")  # one second past valid_until
            before = len(fake.calls)
            status = widget.client.get("/embed/widget/status", query_string={"code": code},
                                       headers={"X-TVWidget-Credential": widget.credential, "HX-Request": "true"})
            assert 'data-tvwidget-state="expired"' in status.text and 'hx-trigger="every' not in status.text
            fresh = open_widget(app)
            assert fresh.state() == "expired" and 'data-tvwidget-action="play"' in fresh.html
            assert api.get("/api/v1/tickets/T-1/service-case", headers=API).status_code == 404
            assert api.post("/api/v1/tickets/T-1/close", headers=API).status_code == 200  # the block is released
            assert fake.calls[before:] == []  # the expiry itself needs no TeamViewer call

            result = app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
            assert "closed at TeamViewer 1" in result.output, result.output
            assert fake.sessions[code]["state"] == "Closed"
            assert [c for c in fake.calls[before:] if code in c[1]] == [("PUT", f"/sessions/{code}")]

            clock.move_to("2030-03-01 09:50:00")
            after_close = len(fake.calls)
            widget.client.get("/embed/widget/status", query_string={"code": code},
                              headers={"X-TVWidget-Credential": widget.credential})
            open_widget(app)
            app.test_cli_runner().invoke(args=["tvwidget", "expire-cases"])
            app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
            assert [c for c in fake.calls[after_close:] if code in c[1]] == []  # nothing more about this case
        comments = api.get("/api/v1/tickets/T-1/comments", headers=API).get_json()["comments"]
        assert [c["kind"] for c in comments] == ["expired"]
    finally:
        fake.stop()
