"""Clients of tvwidget served by gunicorn (conftest's ``gunicorn`` fixture): an agent's widget tab, an admin
tab, and a way to send their requests at one common instant."""
import re
import threading
import time

import requests

from .conftest import make_token, ticket_claim
from .helpers import csrf

HEADERS = {"HX-Request": "true", "Sec-Fetch-Site": "same-origin"}


def checked(response):
    """Return ``response`` after asserting nobody sees an error page or the database's own words."""
    assert response.status_code < 500, response.text
    assert "database is locked" not in response.text and "Traceback" not in response.text
    return response


class Agent:
    """One browser tab: a launched widget talking to gunicorn over HTTP.

    Each request opens its own connection: a kept-alive one that gunicorn
    closes as idle just as a request goes out fails in the client, not in tvwidget.
    """

    def __init__(self, base: str, ticket: str = "T-1", **claims):
        self.base = base
        self.html = checked(requests.get(base + "/embed/widget", timeout=10, params={
            "token": make_token(ticket=ticket_claim(ticket), **claims)})).text
        self.credential = re.search(r'"X-TVWidget-Credential": "([^"]+)"', self.html).group(1)

    def post(self, action: str):
        key = re.search(r'"idempotency_key": "([0-9a-f]{32})"', self.html)
        response = checked(requests.post(self.base + f"/embed/widget/{action}", timeout=30,
                                          data={"idempotency_key": key.group(1)} if key else {},
                                          headers={"X-TVWidget-Credential": self.credential} | HEADERS))
        self.html = response.text
        return response

    def poll(self, code: str):
        """Ask for the case's live status as the open widget does every few seconds (leaves the page as it is)."""
        return checked(requests.get(self.base + "/embed/widget/status", params={"code": code}, timeout=30,
                                     headers={"X-TVWidget-Credential": self.credential} | HEADERS))

    def state(self):
        return re.search(r'data-tvwidget-state="([a-z]+)"', self.html).group(1)

    def code(self):
        return re.search(r'data-tvwidget-field="session-code"[^>]*>\s*([^<\s]+)', self.html).group(1)


class Admin:
    """The admin area in another tab (its session cookie is Secure, so sent by hand over plain HTTP)."""

    def __init__(self, base: str):
        self.base = base
        response = requests.get(base + "/embed/admin", allow_redirects=False, timeout=10, params={
            "token": make_token(role="admin", ticket=None, sub="admin-1", name="Ada Admin")})
        assert response.status_code == 303, response.text
        self.cookies = dict(response.cookies)
        page = self._send("GET", "/embed/admin/revoke")
        self.cookies |= dict(page.cookies)  # the CSRF secret now lives in the session
        self.csrf = csrf(page)

    def _send(self, method, path, **kwargs):
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return checked(requests.request(method, self.base + path, allow_redirects=False, timeout=30,
                                         headers={"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}, **kwargs))

    def revoke(self):
        return self._send("POST", "/embed/admin/revoke", data={"csrf_token": self.csrf})


def together(jobs, start: float | None = None):
    """Run each ``(delay, call)`` in its own thread, ``delay`` seconds after one common start (``time.time()``
    seconds; soon by default), and return what each returned."""
    start = start or time.time() + 0.3
    results = [None] * len(jobs)

    def run(index, delay, call):
        time.sleep(max(0.0, start + delay - time.time()))
        try:
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results
