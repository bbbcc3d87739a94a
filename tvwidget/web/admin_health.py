"""The admin area's "Health" section: ``tvwidget doctor``'s checks, in the admin's language.

A GET shows the local checks only (settings, database, SMTP greeting, frame
ancestors, worker): no page of tvwidget calls TeamViewer on GET.  The button
POSTs (CSRF-checked like every admin form) to ask TeamViewer too: is the
stored token valid, and has it each permission (read-only calls).
"""
from flask import render_template
from markupsafe import Markup

from tvwidget.ops import doctor
from tvwidget.web.admin import bp


@bp.get("/health")
def health():
    """Run the local checks (nothing is sent or changed) and show one line each."""
    return _page(asked=None)


@bp.post("/health")
def health_teamviewer():
    """Run the local checks and ask TeamViewer (the button): the token and its permissions, read-only."""
    return _page(asked=doctor.ask_teamviewer())


def _page(asked: list[doctor.Check] | None):
    checks = doctor.run(teamviewer=False)
    failed = sum(not check.ok for check in checks + (asked or []))
    return render_template("tvwidget/admin/health.html", checks=checks, asked=asked, failed=failed,
                           command=Markup("<code>flask --app wsgi tvwidget doctor</code>"))
