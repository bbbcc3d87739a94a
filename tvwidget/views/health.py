"""``/healthz`` for load balancers and monitoring: database reachable, integration state.

Mounted in a host app (``init_app``) it is ``/embed/healthz``: ``/healthz`` stays the host's.

It never calls TeamViewer (a probe every few seconds would spend the
licence's request budget) and shows no secret, only whether the stored
token can be read.
"""
import logging

import sqlalchemy as sa
from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError

from .. import integration
from ..extensions import db
from ..security import headers

log = logging.getLogger(__name__)

bp = Blueprint("tvwidget_health", __name__)
bp.after_request(headers(frameable=False))


@bp.get("/healthz")
def healthz():
    """Return 200 while the database answers (``degraded`` if TeamViewer is not usable), else 503."""
    try:
        db.session.execute(sa.text("SELECT 1"))
        teamviewer = integration.status(integration.settings())
    except SQLAlchemyError as exc:
        # The class only: a driver's message may carry the database URL.
        log.warning("Health check: the database is unavailable (%s)", type(exc).__name__)
        return jsonify(status="degraded", database="unavailable", teamviewer="unknown"), 503
    return jsonify(status="ok" if teamviewer == "connected" else "degraded", database="ok", teamviewer=teamviewer)
