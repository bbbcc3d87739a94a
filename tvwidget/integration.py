"""The TeamViewer connection: settings row, stored token and the client built from it."""
from flask import current_app

from . import secrets
from .extensions import db
from .models import IntegrationSettings
from .teamviewer import TeamViewerClient

SETTINGS_ID = 1


DEFAULT_GROUP = "BOSS"


def settings() -> IntegrationSettings:
    """Return the integration's settings; an unsaved, unconnected row before the first connect."""
    row = db.session.get(IntegrationSettings, SETTINGS_ID)
    return row if row is not None else IntegrationSettings(id=SETTINGS_ID, group_name=DEFAULT_GROUP)


def client(token: str | None) -> TeamViewerClient:
    """Return a TeamViewer client for ``token`` configured from the app's settings."""
    config = current_app.config
    return TeamViewerClient(
        config["TEAMVIEWER_API_URL"], token,
        connect_timeout=config["TEAMVIEWER_CONNECT_TIMEOUT"],
        read_timeout=config["TEAMVIEWER_READ_TIMEOUT"],
        retries=config["TEAMVIEWER_RETRIES"],
    )


def connected_client(row: IntegrationSettings) -> TeamViewerClient | None:
    """Return a client with the stored token, or None when not connected.

    Raises ``secrets.SecretUnreadable`` when the stored token cannot be decrypted.
    """
    if not row.token_ciphertext:
        return None
    return client(secrets.decrypt(row.token_ciphertext))
