"""The integration's settings (Django settings, all prefixed ``TVWIDGET_``), with their defaults."""
from django.conf import settings

from tvwidget_host import RETRY_WINDOW

# django-helpdesk priority (1 is the highest) -> tvwidget's priority value.
DEFAULT_PRIORITY_MAP = {1: "Urgent", 2: "High", 3: "Medium", 4: "Low", 5: "Low"}

DEFAULTS = {
    # tvwidget's base URL as this server reaches it (host API) and as browsers reach it (embed script).
    "TVWIDGET_URL": "",
    "TVWIDGET_PUBLIC_URL": "",          # only when browsers reach tvwidget at another address
    "TVWIDGET_EMBED_SECRET": "",        # signs launch tokens and webhooks (tvwidget's TVWIDGET_EMBED_SECRET)
    "TVWIDGET_HOST_API_KEY": "",        # tvwidget's TVWIDGET_HOST_API_KEY
    "TVWIDGET_FAIL_OPEN": False,        # True: allow closing when tvwidget cannot be reached
    "TVWIDGET_TIMEOUT": 5.0,            # seconds for one host API call
    "TVWIDGET_PRIORITY_MAP": DEFAULT_PRIORITY_MAP,
    "TVWIDGET_TYPE_FIELD": None,        # name of a django-helpdesk custom field holding the ticket type
    # Refuse webhook events older than this (seconds); at least tvwidget's retry window (7 days 7 hours).
    "TVWIDGET_WEBHOOK_MAX_AGE": int(RETRY_WINDOW.total_seconds()) + 24 * 3600,
    "TVWIDGET_TOKEN_TTL": 600,          # seconds a launch token is valid
}


def get(name: str):
    return getattr(settings, name, DEFAULTS[name])


def base_url() -> str:
    return (get("TVWIDGET_URL") or "").rstrip("/")


def public_url() -> str:
    return (get("TVWIDGET_PUBLIC_URL") or get("TVWIDGET_URL") or "").rstrip("/")
