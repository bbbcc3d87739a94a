"""The host API client, configured from Django settings."""
from tvwidget_host import HostClient

from . import conf


def host_client() -> HostClient:
    return HostClient(conf.base_url(), conf.get("TVWIDGET_HOST_API_KEY"), timeout=float(conf.get("TVWIDGET_TIMEOUT")))
