"""The demo project's settings, with test values (the tvwidget URL is set by the fixture that serves it)."""
import os
import tempfile

from demo_site.settings import *  # noqa: F403

TVWIDGET_URL = "http://127.0.0.1:9"  # replaced by the ``tvwidget`` fixture
TVWIDGET_EMBED_SECRET = "test-embed-secret-0123456789abcdef-0123456789"
TVWIDGET_HOST_API_KEY = "test-host-api-key-0123456789abcdef"
TVWIDGET_FAIL_OPEN = False
TVWIDGET_TIMEOUT = 3.0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# A file, not SQLite's shared in-memory database: the live server's thread (tvwidget's webhook) writes while
# the test reads, and shared-cache memory databases answer "table is locked" at once instead of waiting.
DATABASES = {"default": {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.path.join(tempfile.gettempdir(), "tvwidget-helpdesk.sqlite3"),
    "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"tvwidget-helpdesk-test-{os.getpid()}.sqlite3")},
    "OPTIONS": {"timeout": 20},
}}

# HELPDESK_TEST_POSTGRES=1 with TVWIDGET_TEST_POSTGRES_URL (as `make test` and CI set them): the same tests on
# PostgreSQL; Django creates and drops its own test_<name> database beside that one.
if os.environ.get("HELPDESK_TEST_POSTGRES") == "1" and os.environ.get("TVWIDGET_TEST_POSTGRES_URL"):
    from urllib.parse import urlsplit

    _url = urlsplit(os.environ["TVWIDGET_TEST_POSTGRES_URL"])
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": _url.path.lstrip("/"), "USER": _url.username or "",
        "PASSWORD": _url.password or "", "HOST": _url.hostname or "", "PORT": str(_url.port or ""),
    }}
