"""The admin area's read-only "Health" section: ``tvwidget doctor``'s checks, in the admin's language."""
from flask import render_template
from markupsafe import Markup

from tvwidget.ops import doctor
from tvwidget.web.admin import bp


@bp.get("/health")
def health():
    """Run the doctor's checks (read-only: nothing is sent or changed) and show one line each."""
    checks = doctor.run()
    return render_template("tvwidget/admin/health.html", checks=checks,
                           failed=sum(not check.ok for check in checks),
                           command=Markup("<code>flask --app wsgi tvwidget doctor</code>"))
