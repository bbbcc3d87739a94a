"""Django system checks: a missing secret or URL, or the app listed after helpdesk, each get a clear message."""
from django.core.checks import run_checks


def ids():
    return {message.id: message.msg for message in run_checks(tags=["compatibility"])
            if message.id.startswith("tvwidget_helpdesk.")}


def test_the_test_settings_pass():
    assert ids() == {}


def test_missing_url(settings):
    settings.TVWIDGET_URL = ""
    assert ids()["tvwidget_helpdesk.E001"] == "TVWIDGET_URL is not set."


def test_bad_url(settings):
    settings.TVWIDGET_URL = "tvwidget.example.com"
    assert "is not an http(s) URL" in ids()["tvwidget_helpdesk.E001"]


def test_missing_or_short_secret(settings):
    settings.TVWIDGET_EMBED_SECRET = ""
    assert "TVWIDGET_EMBED_SECRET" in ids()["tvwidget_helpdesk.E002"]
    settings.TVWIDGET_EMBED_SECRET = "short"
    assert "tvwidget_helpdesk.E002" in ids()


def test_missing_api_key(settings):
    del settings.TVWIDGET_HOST_API_KEY
    assert "TVWIDGET_HOST_API_KEY" in ids()["tvwidget_helpdesk.E003"]


def test_app_listed_after_helpdesk(settings):
    apps = [app for app in settings.INSTALLED_APPS if app != "tvwidget_helpdesk"]
    settings.INSTALLED_APPS = apps + ["tvwidget_helpdesk"]
    assert ids()["tvwidget_helpdesk.E004"] == "'tvwidget_helpdesk' is listed after 'helpdesk' in INSTALLED_APPS."


def test_middleware_missing_or_too_early(settings):
    ours = "tvwidget_helpdesk.middleware.CloseGuardMiddleware"
    others = [name for name in settings.MIDDLEWARE if name != ours]
    settings.MIDDLEWARE = others
    assert "tvwidget_helpdesk.E005" in ids()
    settings.MIDDLEWARE = [ours] + others
    assert "MessageMiddleware" in ids()["tvwidget_helpdesk.E006"]


def test_bad_priority_map(settings):
    settings.TVWIDGET_PRIORITY_MAP = {1: ""}
    assert "tvwidget_helpdesk.E007" in ids()


def test_fail_open_warns(settings):
    settings.TVWIDGET_FAIL_OPEN = True
    assert "tvwidget_helpdesk.W001" in ids()
