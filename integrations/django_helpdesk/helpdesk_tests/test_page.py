"""The ticket page's panel (embed markup, fresh launch token), the token refresh, and the admin link."""
import re
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.template import Context, Template
from django.test import RequestFactory

from .conftest import EMBED_SECRET

EMBED = re.compile(r'<div data-tvwidget-embed data-tvwidget-token="([^"]+)"')


def claims(token):
    return jwt.decode(token, EMBED_SECRET, algorithms=["HS256"], audience="tvwidget")


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@helpdesk.example", "pw-root-123")


def test_staff_ticket_page_embeds_the_widget_beside_the_followups(client, agent, make_ticket, settings):
    ticket = make_ticket()
    client.force_login(agent)
    html = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert f'<script src="{settings.TVWIDGET_URL}/embed/embed.js" async></script>' in html
    token = EMBED.search(html).group(1)
    assert claims(token)["ticket"]["id"] == str(ticket.pk) and claims(token)["sub"] == str(agent.pk)
    assert html.index("data-tvwidget-embed") < html.index('id="followup-tab"')  # before the follow-ups
    assert 'data-tvwidget-helpdesk="admin-link"' not in html  # agents get no admin link


def test_superusers_get_the_admin_link_into_tvwidget(client, superuser, make_ticket, settings):
    ticket = make_ticket()
    client.force_login(superuser)
    assert 'data-tvwidget-helpdesk="admin-link"' in client.get(f"/tickets/{ticket.pk}/").content.decode()
    response = client.get("/tvwidget/admin/")
    target = urlsplit(response["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{settings.TVWIDGET_URL}/embed/admin"
    token = claims(parse_qs(target.query)["token"][0])
    assert token["role"] == "admin" and "ticket" not in token and token["exp"] - token["iat"] <= 60
    assert response["Referrer-Policy"] == "no-referrer"


def test_agents_cannot_open_the_admin_area(client, agent):
    client.force_login(agent)
    assert "/embed/admin" not in client.get("/tvwidget/admin/").get("Location", "")


def test_token_refresh_is_staff_only_post(client, agent, make_ticket):
    ticket = make_ticket()
    anonymous = client.post(f"/tvwidget/tickets/{ticket.pk}/token/")
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    client.force_login(agent)
    assert client.get(f"/tvwidget/tickets/{ticket.pk}/token/").status_code == 405
    fresh = client.post(f"/tvwidget/tickets/{ticket.pk}/token/").json()["token"]
    assert claims(fresh)["ticket"]["id"] == str(ticket.pk)


def test_the_include_for_hosts_that_override_the_ticket_template(agent, make_ticket):
    request = RequestFactory().get("/")
    request.user = agent
    html = Template("{% load tvwidget_helpdesk %}{% tvwidget_panel ticket %}").render(
        Context({"ticket": make_ticket(), "request": request}))
    assert "data-tvwidget-embed" in html and "/embed/embed.js" in html


def test_the_admin_link_opens_tvwidgets_admin_area(client, superuser, tvwidget):
    import requests

    client.force_login(superuser)
    opened = requests.get(client.get("/tvwidget/admin/")["Location"], timeout=10, allow_redirects=False)
    # tvwidget accepted the admin token: its admin session starts and it sends the browser into the area
    assert opened.status_code == 303 and "/embed/admin/" in opened.headers["Location"]
    assert "Set-Cookie" in opened.headers


def test_agents_token_cannot_open_tvwidgets_admin_area(agent, tvwidget):
    import requests

    from tvwidget_helpdesk.views import launch_token

    refused = requests.get(f"{tvwidget.url}/embed/admin", params={"token": launch_token(agent, ttl=60)}, timeout=10)
    assert refused.status_code in (401, 403)
