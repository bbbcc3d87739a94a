"""The widget lists the ticket's earlier service cases: newest first, paginated, loaded lazily."""
import re


def _history(widget, page=None):
    return widget.client.get("/embed/widget/history", query_string={"page": page} if page else {},
                             headers={"X-TVWidget-Credential": widget.credential, "HX-Request": "true"})


def _codes(html):
    return re.findall(r'data-tvwidget-session-code="([^"]+)"', html)


def test_history_is_loaded_after_the_widget_not_with_it(connected_app, launch):
    widget = launch()
    assert 'data-tvwidget-field="history"' in widget.html
    assert 'hx-get="/embed/widget/history" hx-trigger="load"' in widget.html
    assert "data-tvwidget-session-code" not in widget.html
    response = _history(widget)
    assert response.status_code == 200 and "No earlier service cases" in response.text


def test_history_lists_past_cases_newest_first_five_per_page(connected_app, launch, smtp):
    widget = launch()
    codes = []
    for n in range(7):
        widget.play()
        codes.append(widget.field("session-code"))
        widget.post("stop", {"outcome": "resolved" if n % 2 else "unresolved", "note": f"case {n}"})
    first = _history(widget).text
    assert _codes(first) == codes[::-1][:5]
    assert "Alex Morgan" in first and "Duration 0:00:0" in first
    assert 'data-outcome="resolved"' in first and 'data-outcome="unresolved"' in first
    assert 'data-status="sent"' in first
    assert "connected time not reported yet" in first
    assert 'hx-get="/embed/widget/history?page=2"' in first and "Newer" not in first
    second = _history(widget, 2).text
    assert _codes(second) == codes[::-1][5:]
    assert 'hx-get="/embed/widget/history?page=1"' in second and "Older" not in second


def test_history_of_another_ticket_is_not_shown(connected_app, launch):
    widget = launch()
    widget.play()
    widget.stop()
    other = launch(ticket={"id": "T-2", "subject": "Other", "requester": {"name": "A", "email": "a@example.com"}})
    assert _codes(_history(other).text) == []
    assert len(_codes(_history(widget).text)) == 1


def test_history_needs_the_widget_credential(connected_app, client):
    assert client.get("/embed/widget/history").status_code == 403
