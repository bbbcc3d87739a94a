"""Every audit kind tvwidget records has a label, so the audit page shows it and admins can filter on it."""
import ast
import html
import re
from pathlib import Path

import tvwidget
from tvwidget.extensions import db
from tvwidget.storage import audit
from tvwidget.storage.models import AuditEvent

from ..conftest import make_token

PACKAGE = Path(tvwidget.__file__).parent


def _record_calls():
    """Yield (path, line, first argument) for every ``audit.record(...)`` call in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit"):
                yield path.relative_to(PACKAGE.parent), node.lineno, node.args[0] if node.args else None


def test_every_recorded_kind_is_a_string_listed_in_kinds():
    calls = list(_record_calls())
    assert len(calls) > 20  # the scan sees the package's calls (a broken scan would pass vacuously)
    not_literal = [f"{path}:{line}" for path, line, kind in calls
                   if not (isinstance(kind, ast.Constant) and isinstance(kind.value, str))]
    assert not_literal == [], "record kinds as string literals, so this test can check them"
    missing = sorted({f"{kind.value} ({path}:{line})" for path, line, kind in calls if kind.value not in audit.KINDS})
    assert missing == [], "add these kinds with a label to tvwidget.storage.audit.KINDS"


def test_kinds_lists_only_kinds_something_records():
    recorded = {kind.value for _, _, kind in _record_calls()}
    assert sorted(set(audit.KINDS) - recorded) == []


def test_the_audit_page_offers_every_kind_and_filters_on_the_reconcile_ones(app, client):
    with app.app_context():
        for kind, ticket in (("case_adopted", "T-1"), ("orphan_closed", "T-2"), ("case_opened", "T-3")):
            audit.record(kind, None, ticket_id=ticket)
        db.session.commit()
        assert db.session.query(AuditEvent).count() == 3
    response = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    assert response.status_code == 303, response.text
    page = client.get("/embed/admin/audit")
    assert page.status_code == 200
    offered = re.findall(r'<option[^>]*value="([a-z_]+)"', page.text)
    assert sorted(offered) == sorted(audit.KINDS)
    for kind, ticket in (("case_adopted", "T-1"), ("orphan_closed", "T-2")):
        filtered = client.get("/embed/admin/audit", query_string={"kind": kind})
        assert filtered.status_code == 200
        assert re.findall(r'<tr data-tvwidget-kind="([a-z_]+)"', filtered.text) == [kind]
        assert f"#{ticket}" in filtered.text
        assert html.escape(str(audit.KINDS[kind]), quote=False) in filtered.text
