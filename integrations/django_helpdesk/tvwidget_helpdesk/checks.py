"""Django system checks: what this integration needs from the project's settings, each with a clear message."""
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import conf

APP = "tvwidget_helpdesk"
MIDDLEWARE = "tvwidget_helpdesk.middleware.CloseGuardMiddleware"
NEEDED_BEFORE = ("django.contrib.sessions.middleware.SessionMiddleware",
                 "django.contrib.auth.middleware.AuthenticationMiddleware",
                 "django.contrib.messages.middleware.MessageMiddleware")


def _app_index(name: str) -> int | None:
    for index, entry in enumerate(settings.INSTALLED_APPS):
        if entry == name or entry.startswith(name + ".apps."):
            return index
    return None


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    problems = []
    url = conf.get("TVWIDGET_URL")
    parts = urlsplit(url or "")
    if not url:
        problems.append(Error("TVWIDGET_URL is not set.", hint="Set it to tvwidget's base URL, e.g. "
                              "'https://tvwidget.example.com' (the host API and /embed/embed.js live under it).",
                              id="tvwidget_helpdesk.E001"))
    elif parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(Error(f"TVWIDGET_URL {url!r} is not an http(s) URL.",
                              hint="e.g. 'https://tvwidget.example.com'", id="tvwidget_helpdesk.E001"))
    public = conf.get("TVWIDGET_PUBLIC_URL")
    if public and urlsplit(public).scheme not in ("http", "https"):
        problems.append(Error(f"TVWIDGET_PUBLIC_URL {public!r} is not an http(s) URL.", id="tvwidget_helpdesk.E001"))
    if len(conf.get("TVWIDGET_EMBED_SECRET") or "") < 32:
        problems.append(Error("TVWIDGET_EMBED_SECRET is missing or shorter than 32 characters.",
                              hint="Use the same value as tvwidget's TVWIDGET_EMBED_SECRET: it signs launch tokens "
                                   "and tvwidget signs its webhook with it.", id="tvwidget_helpdesk.E002"))
    if len(conf.get("TVWIDGET_HOST_API_KEY") or "") < 24:
        problems.append(Error("TVWIDGET_HOST_API_KEY is missing or shorter than 24 characters.",
                              hint="Use the same value as tvwidget's TVWIDGET_HOST_API_KEY: the close guard asks "
                                   "tvwidget's host API with it.", id="tvwidget_helpdesk.E003"))
    ours, helpdesk = _app_index(APP), _app_index("helpdesk")
    if ours is not None and helpdesk is not None and ours > helpdesk:
        problems.append(Error("'tvwidget_helpdesk' is listed after 'helpdesk' in INSTALLED_APPS.",
                              hint="List it before 'helpdesk': its helpdesk/ticket.html extends django-helpdesk's "
                                   "and is only found first that way.", id="tvwidget_helpdesk.E004"))
    middleware = list(settings.MIDDLEWARE)
    if MIDDLEWARE not in middleware:
        problems.append(Error(f"{MIDDLEWARE} is not in MIDDLEWARE.",
                              hint="Without it a refused close is an error page instead of a message, and bulk "
                                   "close and merge are not all-or-nothing.", id="tvwidget_helpdesk.E005"))
    else:
        late = [name for name in NEEDED_BEFORE if name not in middleware[:middleware.index(MIDDLEWARE)]]
        if late:
            problems.append(Error(f"{MIDDLEWARE} must come after {', '.join(late)} in MIDDLEWARE.",
                                  id="tvwidget_helpdesk.E006"))
    priority_map = conf.get("TVWIDGET_PRIORITY_MAP")
    if not isinstance(priority_map, dict) or not all(isinstance(v, str) and v for v in priority_map.values()):
        problems.append(Error("TVWIDGET_PRIORITY_MAP must map django-helpdesk priorities (1-5) to names.",
                              hint="e.g. {1: 'Urgent', 2: 'High', 3: 'Medium', 4: 'Low', 5: 'Low'}",
                              id="tvwidget_helpdesk.E007"))
    if conf.get("TVWIDGET_FAIL_OPEN"):
        problems.append(Warning("TVWIDGET_FAIL_OPEN is on: tickets can be closed while tvwidget cannot be reached, "
                                "even with a TeamViewer service case open.", id="tvwidget_helpdesk.W001"))
    return problems
