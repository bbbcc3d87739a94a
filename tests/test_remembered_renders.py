"""Remembered renders (issue 8): a widget or status fragment served from memory is exactly a fresh render."""
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from flask import g
from markupsafe import Markup

from tvwidget import i18n
from tvwidget.extensions import db
from tvwidget.host import check_launch_token
from tvwidget.models import ServiceCase, utcnow
from tvwidget.views.widget import PER_REQUEST, status_context, widget_context

from .conftest import connect, make_token, open_widget

WIDGET = "tvwidget/widget.html"


def renders(app, token, template=WIDGET, status=False, languages="en", mount="", **changes):
    """Return the remembered and the fresh render of what ``token``'s agent sees on its ticket now."""
    with app.test_request_context("/embed/widget", base_url=f"http://localhost{mount}/",
                                  headers={"Accept-Language": languages}):
        claims = check_launch_token(token, want_ticket=True)
        g.tvwidget_agent = claims.agent
        context = widget_context(claims.agent, claims.ticket.id)
        if status:
            context = status_context(context["case"], None, utcnow())
        context |= changes
        fills = PER_REQUEST if template == WIDGET else ()
        return i18n.render_remembered(template, fills, **context), i18n.render_template(template, **context)


def expire_open_case(app):
    with app.app_context():
        db.session.execute(sa.update(ServiceCase).where(ServiceCase.state == "open")
                           .values(valid_until=utcnow() - timedelta(minutes=1)))
        db.session.commit()


SCENARIOS = {
    "disconnected": lambda app: None,
    "idle": lambda app: connect(app),
    "open": lambda app: (connect(app), open_widget(app).play()),
    "expired": lambda app: (connect(app), open_widget(app).play(), expire_open_case(app)),
}


@pytest.mark.parametrize("locale", ["en", "ja"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_remembered_widget_is_byte_for_byte_a_fresh_render(app, scenario, locale):
    SCENARIOS[scenario](app)
    token = make_token(locale=locale)
    first, fresh = renders(app, token)  # not remembered yet
    assert first == fresh
    assert f'data-tvwidget-state="{scenario}"' in first
    again, fresh_again = renders(app, token)  # remembered: a new credential and key filled in
    assert again == fresh_again
    assert i18n._PLACEHOLDER not in again
    assert app.extensions["tvwidget_rendered"]
    if scenario in ("open", "expired"):
        remembered, fresh = renders(app, token, "tvwidget/_status.html", status=True)
        assert remembered == fresh
        assert renders(app, token, "tvwidget/_status.html", status=True)[0] == fresh


@pytest.mark.parametrize("scenario", ["disconnected", "open"])
def test_no_input_of_the_render_is_left_out_of_what_it_is_remembered_by(app, scenario):
    SCENARIOS[scenario](app)
    base = make_token()
    renders(app, base)
    variants = [
        make_token(name="Someone Else"), make_token(sub="agent-2"), make_token(role="admin"),
        make_token(locale="ja"), make_token(tz="Europe/Berlin"),
        make_token(ticket={"id": "T-2", "subject": "Printer"}),
    ]
    seen = set()
    for token in variants:
        remembered, fresh = renders(app, token)
        assert remembered == fresh
        seen.add(remembered.split("hx-headers", 1)[0])
    # Without a locale in the token, the browser's languages decide.
    unsaid = make_token(locale=None)
    assert renders(app, unsaid, languages="en")[0].startswith('<!doctype html>\n<html lang="en">')
    remembered, fresh = renders(app, unsaid, languages="ja,en;q=0.5")
    assert remembered == fresh and remembered.startswith('<!doctype html>\n<html lang="ja">')
    # Mounted under a prefix, every URL in the widget carries it.
    remembered, fresh = renders(app, base, mount="/helpdesk/tv")
    assert remembered == fresh and 'href="/helpdesk/tv/static/tvwidget/tvwidget.css' in remembered
    # Context values that compare equal but render apart: str and Markup, and a changed alert.
    for alert in ("<b>careful</b>", Markup("<b>careful</b>"), "careful"):
        remembered, fresh = renders(app, base, alert=alert)
        assert remembered == fresh
    assert "&lt;b&gt;careful" in renders(app, base, alert="<b>careful</b>")[0]
    assert "<b>careful</b>" in renders(app, base, alert=Markup("<b>careful</b>"))[0]
    assert len(seen) > 1


def test_freezing_keeps_apart_values_that_compare_equal():
    assert i18n._frozen(True) != i18n._frozen(1)
    assert i18n._frozen(Markup("<b>")) != i18n._frozen("<b>")
    utc = datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)
    tokyo = utc.astimezone(timezone(timedelta(hours=9)))
    assert utc == tokyo and i18n._frozen(utc) != i18n._frozen(tokyo)
    with pytest.raises(i18n._Unfrozen):
        i18n._frozen(object())


def test_a_value_that_escaping_would_change_is_rendered_afresh(app):
    connect(app)
    token = make_token()
    remembered, fresh = renders(app, token, credential="a'b<c>\"d")
    assert remembered == fresh
    assert "a&#39;b" in remembered or "a\\u0027b" in remembered
    with app.app_context():
        assert not any("a'b<c>" in str(key) for key in app.extensions.get("tvwidget_rendered", {}))


def test_what_is_remembered_stays_bounded(app, monkeypatch):
    monkeypatch.setattr(i18n, "REMEMBERED_MAX", 5)
    connect(app)
    token = make_token()
    for n in range(12):
        assert renders(app, token, alert=f"alert {n}")[0].count(f"alert {n}") == 1
    assert 0 < len(app.extensions["tvwidget_rendered"]) <= 5
