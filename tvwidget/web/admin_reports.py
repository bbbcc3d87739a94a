"""The TeamViewer Sessions Summary page in the admin area, and its CSV downloads.

One context function feeds the full page and the ``_report.html`` fragment
that htmx swaps in when the filters change; the URL keeps the filters.
"""
from flask import abort, g, make_response, request
from flask_babel import format_decimal, gettext

from tvwidget import csv_export, timefmt
from tvwidget.cases import lifecycle as cases
from tvwidget.i18n import render_page
from tvwidget.reports import rollup, summary as reports
from tvwidget.web.admin import bp

PAGE = "tvwidget/admin/report.html"
FRAGMENT = "tvwidget/admin/_report.html"


def _filters() -> tuple[reports.Filters, reports.FilterError | None]:
    """Return the URL's filters in the admin's time zone, or the defaults and what was wrong."""
    tz = g.tvwidget_agent.tz or "UTC"  # a zone from the launch token is checked there
    try:
        return reports.parse_filters(request.args, tz), None
    except reports.FilterError as exc:
        return reports.parse_filters({}, tz), exc


def human_duration(seconds: int) -> str:
    """Return a duration for reading at a glance: "12 h 05 min" or "21 min 30 s"."""
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return gettext("%(hours)s h %(minutes)s min", hours=format_decimal(seconds // 3600),
                       minutes=f"{seconds % 3600 // 60:02d}")
    return gettext("%(minutes)s min %(seconds)s s", minutes=seconds // 60, seconds=f"{seconds % 60:02d}")


def band_name(row: reports.Row) -> str:
    """Return a duration band's name for people: "under 5 min", "5–15 min", "60 min or more"."""
    low, high = reports.band_bounds(row)
    if low == 0:
        return gettext("under %(minutes)s min", minutes=high)
    if high:
        return gettext("%(low)s–%(high)s min", low=low, high=high)
    return gettext("%(minutes)s min or more", minutes=low)


def label(row: reports.Row) -> str:
    """Return how a table line is named: the technician's name, the value, or "(none)"."""
    return row.name or row.value or gettext("(none)")


def outcome_name(row: reports.Row) -> str:
    """Return an outcome as people read it: "Resolved", "Unresolved", "Unknown" (another tool's value as is)."""
    return str(cases.OUTCOME_LABELS.get(row.value, row.value))


def chart(rows: list[reports.Row], name=label, muted_value: str | None = None) -> list[dict]:
    """Return the bars of a chart: the sessions of each line, named by ``name``; ``muted_value``'s bar greyed."""
    return [{"label": name(row), "count": row.sessions, "muted": row.value == muted_value} for row in rows]


def _context() -> dict:
    filters, problem = _filters()
    technicians = reports.technicians()
    chosen = filters.technician if problem is None else request.args.get("technician") or None
    return {
        "filters": filters,
        "problem": problem,
        "report": None if problem else reports.build(filters),
        "technicians": technicians,
        # What the form shows: the admin's own input, even when it was refused.
        "form": {"from": request.args.get("from") or filters.start.isoformat(),
                 "to": request.args.get("to") or filters.end.isoformat(), "technician": chosen or ""},
        "technician_name": dict(technicians).get(chosen, chosen) if chosen else None,
        "duration": timefmt.format_duration,
        "human_duration": human_duration,
        "band_name": band_name,
        "label": label,
        "outcome_name": outcome_name,
        "unknown_outcome": rollup.UNKNOWN_OUTCOME,
        "chart": chart,
    }


@bp.get("/reports/teamviewer-sessions")
def sessions_report():
    """Show the TeamViewer Sessions Summary; htmx gets just the results for the new filters."""
    context = _context()
    # A history restore (back button, htmx's cache being off) needs the whole page.
    fragment = request.headers.get("HX-Request") == "true" and not request.headers.get("HX-History-Restore-Request")
    response = make_response(render_page(FRAGMENT if fragment else PAGE, **context),
                             422 if context["problem"] else 200)
    response.vary.add("HX-Request")
    return response


@bp.get("/reports/teamviewer-sessions/<table>.csv")
def sessions_report_csv(table: str):
    """Download one table of the report, or every session behind it, as CSV (UTF-8 with BOM)."""
    if table not in reports.TABLES:
        abort(404)
    filters, problem = _filters()
    if problem:
        return render_page("tvwidget/error.html", message=problem.message), 422
    if table == "sessions":
        rows = reports.session_rows(filters)
    else:
        rows = reports.table_rows(reports.build(filters), table)
    name = f"teamviewer-sessions-{table}-{filters.start.isoformat()}-{filters.end.isoformat()}"
    if filters.technician:
        name += "-" + "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in filters.technician)[:40]
    return csv_export.response(rows, f"{name}.csv")
