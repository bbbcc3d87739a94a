"""``/healthz`` for load balancers and monitoring: database reachable, integration state; ``/metrics``.

Mounted in a host app (``init_app``) they are ``/embed/healthz`` and ``/embed/metrics``: the host's stay the host's.

It never calls TeamViewer (a probe every few seconds would spend the
licence's request budget) and shows no secret, only whether the stored
token can be read.
"""
import logging

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from tvwidget import metrics
from tvwidget.extensions import db
from tvwidget.host.tokens import host_key_matches
from tvwidget.teamviewer import integration
from tvwidget.web.security import headers

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


@bp.get("/metrics")
def prometheus_metrics():
    """Every metric in Prometheus' text format, for a scraper holding the host API key (else 401)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not host_key_matches(key.strip()):
        return Response("Send Authorization: Bearer <TVWIDGET_HOST_API_KEY>.\n", 401,
                        {"WWW-Authenticate": "Bearer", "Content-Type": "text/plain; charset=utf-8"})
    try:
        body = metrics.exposition()
    except SQLAlchemyError as exc:
        log.warning("Metrics: the database is unavailable (%s)", type(exc).__name__)
        return Response("tvwidget cannot reach its database right now.\n", 503,
                        {"Content-Type": "text/plain; charset=utf-8"})
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
