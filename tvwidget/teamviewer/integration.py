"""The TeamViewer connection: settings row, stored token, verify, connect and revoke.

These are domain actions: they change the session and record the audit
event, and the view commits once.
"""
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.storage import audit, secrets
from tvwidget.storage.models import CaseState, IntegrationSettings, ServiceCase, utcnow
from tvwidget.teamviewer.client import (
    TeamViewerAuthError,
    TeamViewerBadReply,
    TeamViewerClient,
    TeamViewerError,
    TeamViewerPermissionError,
    TeamViewerRateLimited,
    TeamViewerTimeout,
    TeamViewerUnavailable,
)

log = logging.getLogger(__name__)

SETTINGS_ID = 1
DEFAULT_GROUP = "BOSS"

# What an admin reads when TeamViewer refuses a script token; the key is the audit ``reason``.
CONNECT_FAILURES = {
    "invalid_token": _l("TeamViewer says this script token is not valid. Copy it again from the Management "
                        "Console (Edit profile ➜ Apps), or create a new one there."),
    "expired_token": _l("This script token has expired at TeamViewer. Create a new script token in the "
                        "Management Console (Edit profile ➜ Apps ➜ Create script token) and paste it here."),
    "missing_account_permission": _l(
        "This script token may not read the TeamViewer account. In the Management Console (Edit profile ➜ Apps), "
        "edit the token and allow Account management (view), then try again."),
    "missing_session_permission": _l(
        "This script token may not manage service cases. In the Management Console (Edit profile ➜ Apps), "
        "edit the token and allow Session management (create, view, edit), then try again."),
    "license_required": _l("Your TeamViewer license does not include the Web API that tvwidget needs "
                           "(TeamViewer answered license_required). Service cases through the API need a "
                           "Premium or Corporate license."),
    "unreachable": _l("TeamViewer cannot be reached from this server. Check its internet access, proxy and "
                      "TVWIDGET_TEAMVIEWER_API_URL, then try again."),
    "timeout": _l("TeamViewer did not answer in time. Try again in a moment."),
    "rate_limited": _l("TeamViewer's request limit for this license was reached. Wait a minute and try again."),
    "bad_reply": _l("TeamViewer sent a reply tvwidget could not understand. Check TVWIDGET_TEAMVIEWER_API_URL "
                    "points at TeamViewer's Web API, then try again."),
}


class ConnectFailed(Exception):
    """TeamViewer did not accept a script token; ``reason`` is a stable code, ``message`` is for the admin."""

    def __init__(self, reason: str, error: TeamViewerError | None = None):
        self.reason = reason
        self.message = CONNECT_FAILURES.get(reason) or (error.message if error else reason)
        self.status = error.status if error else None
        self.remote_error = error.remote_error if error else None
        super().__init__(reason)


class RevokeRefused(Exception):
    """App access cannot be revoked while service cases are active."""

    def __init__(self, cases: list[ServiceCase]):
        super().__init__(f"{len(cases)} active service case(s)")
        self.cases = cases


@dataclass(frozen=True)
class VerifiedAccount:
    """The TeamViewer account a script token belongs to, as shown after connecting."""

    name: str | None
    email: str | None
    company_name: str | None


def settings(lock: str | None = None) -> IntegrationSettings:
    """Return the integration's settings; an unsaved, unconnected row before the first connect.

    ``lock="share"`` (a play about to claim its case) or ``"update"`` (a revoke)
    re-reads the row and locks it until the transaction ends, so that a revoke
    never falls between a play's reading of the token and its claim.
    On SQLite every writing transaction holds the database's one write lock already.
    """
    options = {} if lock is None else {"populate_existing": True, "with_for_update": {"read": lock == "share"}}
    row = db.session.get(IntegrationSettings, SETTINGS_ID, **options)
    return row if row is not None else IntegrationSettings(id=SETTINGS_ID, group_name=DEFAULT_GROUP)


def client(token: str | None, retries: int | None = None) -> TeamViewerClient:
    """Return a TeamViewer client for ``token`` configured from the app's settings (``retries`` overrides)."""
    return TeamViewerClient(
        setting("TEAMVIEWER_API_URL"), token,
        connect_timeout=setting("TEAMVIEWER_CONNECT_TIMEOUT"),
        read_timeout=setting("TEAMVIEWER_READ_TIMEOUT"),
        retries=setting("TEAMVIEWER_RETRIES") if retries is None else retries,
    )


def connected_client(row: IntegrationSettings, retries: int | None = None) -> TeamViewerClient | None:
    """Return a client with the stored token, or None when not connected.

    Raises ``secrets.SecretUnreadable`` when the stored token cannot be decrypted.
    """
    if not row.token_ciphertext:
        return None
    return client(secrets.decrypt(row.token_ciphertext), retries)


def status(row: IntegrationSettings) -> str:
    """Return ``connected``, ``not_connected`` or ``token_unreadable`` without calling TeamViewer."""
    if not row.token_ciphertext:
        return "not_connected"
    try:
        secrets.decrypt(row.token_ciphertext)
    except secrets.SecretUnreadable:
        return "token_unreadable"
    return "connected"


def _failure(exc: TeamViewerError, permission_reason: str) -> ConnectFailed:
    """Map a TeamViewer error during verification onto the admin's reason."""
    if isinstance(exc, TeamViewerAuthError):
        return ConnectFailed("expired_token" if exc.remote_error == "token_expired" else "invalid_token", exc)
    if isinstance(exc, TeamViewerPermissionError):
        return ConnectFailed("license_required" if exc.remote_error == "license_required" else permission_reason,
                             exc)
    if isinstance(exc, TeamViewerTimeout):
        return ConnectFailed("timeout", exc)
    if isinstance(exc, TeamViewerUnavailable):
        return ConnectFailed("unreachable", exc)
    if isinstance(exc, TeamViewerRateLimited):
        return ConnectFailed("rate_limited", exc)
    if isinstance(exc, TeamViewerBadReply):
        return ConnectFailed("bad_reply", exc)
    return ConnectFailed(exc.kind, exc)


def verify(token: str) -> VerifiedAccount:
    """Check a script token live at TeamViewer, or raise ConnectFailed saying what is wrong.

    ``/ping`` proves TeamViewer knows the token, ``/account`` names the account
    and one page of open sessions proves the session permission that play and
    stop need.
    """
    with client(token) as teamviewer:
        step = "missing_account_permission"
        try:
            if not teamviewer.ping():
                # Ping only says yes or no; the account call's 401 tells an expired token from a wrong one.
                step = "invalid_token"
                teamviewer.account()
                raise ConnectFailed("invalid_token")
            account = teamviewer.account()
            step = "missing_session_permission"
            teamviewer.list_sessions()
        except TeamViewerError as exc:
            raise _failure(exc, step) from None
    return VerifiedAccount(name=account.name, email=account.email, company_name=account.company_name)


def connect(row: IntegrationSettings, token: str, account: VerifiedAccount, agent) -> IntegrationSettings:
    """Store a verified token encrypted, with who connected it; return the (persistent) row."""
    previous = {"replaced_last4": row.token_last4} if row.token_ciphertext else {}
    if row.revoked_at is not None and not row.token_ciphertext:
        previous = {"after_revoke_by": row.revoked_by_name}
    row = db.session.merge(row)
    row.token_ciphertext = secrets.encrypt(token)
    row.token_last4 = token[-4:]
    row.account_name, row.account_email, row.company_name = account.name, account.email, account.company_name
    row.connected_by_id, row.connected_by_name, row.connected_at = agent.id, agent.name, utcnow()
    row.revoked_at = row.revoked_by_name = None
    audit.record("connected", agent, account=account.name, company=account.company_name, last4=row.token_last4,
                 **previous)
    log.info("TeamViewer connected by admin %s (account %s)", agent.id, account.name)
    return row


def record_connect_failure(failure: ConnectFailed, agent) -> None:
    """Audit a refused script token: the reason and TeamViewer's answer, never the token."""
    audit.record("connect_failed", agent, reason=failure.reason, status=failure.status,
                 remote_error=failure.remote_error)
    log.info("TeamViewer connect by admin %s refused: %s (HTTP %s)", agent.id, failure.reason, failure.status)


def change_group(row: IntegrationSettings, group_name: str, agent) -> IntegrationSettings:
    """Set the group new service cases go into; return the (persistent) row."""
    row = db.session.merge(row)
    if row.group_name != group_name:
        audit.record("group_changed", agent, old=row.group_name, new=group_name)
        row.group_name = group_name
    return row


def active_cases(now=None) -> list[ServiceCase]:
    """Return the service cases that still hold a ticket (being created, or open and unexpired), oldest first."""
    now = now or utcnow()
    candidates = db.session.scalars(
        sa.select(ServiceCase).where(ServiceCase.state.in_(CaseState.ACTIVE)).order_by(ServiceCase.opened_at)).all()
    return [case for case in candidates if case.is_valid(now)]


def revoke(agent) -> IntegrationSettings:
    """Forget the stored token so another admin can connect theirs, or raise RevokeRefused.

    The group name, email templates, cases and the audit trail stay.
    """
    settings(lock="update")  # waits for plays claiming a case right now, then sees their cases
    cases = active_cases()
    if cases:
        audit.record("revoke_refused", agent, cases=[f"{case.ticket_id} {case.code or '-'}" for case in cases])
        log.info("Revoke by admin %s refused: %s", agent.id,
                 ", ".join(f"ticket {case.ticket_id} case {case.code or '(being created)'}" for case in cases))
        raise RevokeRefused(cases)
    row = db.session.merge(settings())
    audit.record("revoked", agent, account=row.account_name, last4=row.token_last4,
                 connected_by=row.connected_by_name)
    row.token_ciphertext = row.token_last4 = None
    row.account_name = row.account_email = row.company_name = None
    row.connected_by_id = row.connected_by_name = row.connected_at = None
    row.revoked_at, row.revoked_by_name = utcnow(), agent.name
    log.info("TeamViewer app access revoked by admin %s", agent.id)
    return row
