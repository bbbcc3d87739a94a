"""Helpers the test modules share: an admin session, the CSRF token of a page, a JSON answer for a
TeamViewer double, and a fingerprint of every table (to prove a request changed nothing)."""
import hashlib
import json
import re

import sqlalchemy as sa
from werkzeug import Response

from tvwidget.extensions import db

from .conftest import HOST_API_KEY, make_token

API = {"Authorization": f"Bearer {HOST_API_KEY}"}
# The hidden CSRF input of tvwidget's forms (Flask-WTF writes type="hidden"; the demo's own forms do not).
CSRF = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def csrf(page) -> str:
    """The CSRF token of a page (a response or its HTML)."""
    return CSRF.search(page if isinstance(page, str) else page.text).group(1)


def sign_in_admin(client, **claims):
    """Open the admin area in ``client`` with an admin launch token; return the page it lands on."""
    response = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None, **claims)})
    assert response.status_code == 303, response.text
    return client.get(response.headers["Location"])


def admin_client(app, **claims):
    """A new test client of ``app`` with an admin session."""
    client = app.test_client()
    sign_in_admin(client, **claims)
    return client


def json_response(status, body, **headers) -> Response:
    """A JSON answer, as TeamViewer gives one, for a pytest-httpserver handler."""
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


def table_checksums(app) -> dict:
    """Return {table: (row count, SHA-256 of every row)} for every table in the database, reflected."""
    with app.app_context():
        engine = db.engine
        metadata = sa.MetaData()
        metadata.reflect(bind=engine)
        sums = {}
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                rows = connection.execute(sa.select(table).order_by(*order)).all()
                sums[table.name] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return sums


def changed_tables(before: dict, after: dict) -> set:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
