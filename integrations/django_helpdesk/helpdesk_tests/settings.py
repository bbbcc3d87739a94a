"""The demo project's settings, with test values (the tvwidget URL is set by the fixture that serves it)."""
from demo_site.settings import *  # noqa: F403

TVWIDGET_URL = "http://127.0.0.1:9"  # replaced by the ``tvwidget`` fixture
TVWIDGET_EMBED_SECRET = "test-embed-secret-0123456789abcdef-0123456789"
TVWIDGET_HOST_API_KEY = "test-host-api-key-0123456789abcdef"
TVWIDGET_FAIL_OPEN = False
TVWIDGET_TIMEOUT = 3.0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
