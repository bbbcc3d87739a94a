"""A minimal django-helpdesk project with the tvwidget integration (for `make run-helpdesk` and the tests).

Demo values only: DEBUG is on and the secret key is public.  TVWIDGET_* come from the environment.
"""
import os
from pathlib import Path

from django.contrib.messages import constants as message_constants

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("HELPDESK_SECRET_KEY", "django-helpdesk-demo-only-not-secret-0123456789")
DEBUG = os.environ.get("HELPDESK_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "tvwidget_helpdesk",  # before "helpdesk": its helpdesk/ticket.html extends django-helpdesk's
    "helpdesk",
    "demo_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tvwidget_helpdesk.middleware.CloseGuardMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.debug",
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
WSGI_APPLICATION = "demo_site.wsgi.application"

DATABASES = {"default": {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.environ.get("HELPDESK_DB", str(BASE_DIR / "helpdesk.sqlite3")),
}}

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ja", "日本語")]
TIME_ZONE = os.environ.get("HELPDESK_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SITE_ID = 1
LOGIN_URL = "helpdesk:login"
LOGIN_REDIRECT_URL = "helpdesk:home"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# django-helpdesk's messages.html renders "alert-<tag>"; Bootstrap's error class is alert-danger.
MESSAGE_TAGS = {message_constants.ERROR: "danger"}

# django-helpdesk: teams mode needs pinax-teams (not installed); the knowledge base stays on (2.6.1's urls.py
# uses it unconditionally).
HELPDESK_TEAMS_MODE_ENABLED = False

# tvwidget (see integrations/django_helpdesk/README.md).
TVWIDGET_URL = os.environ.get("TVWIDGET_URL", "")
TVWIDGET_PUBLIC_URL = os.environ.get("TVWIDGET_PUBLIC_URL", "")
TVWIDGET_EMBED_SECRET = os.environ.get("TVWIDGET_EMBED_SECRET", "")
TVWIDGET_HOST_API_KEY = os.environ.get("TVWIDGET_HOST_API_KEY", "")
TVWIDGET_FAIL_OPEN = os.environ.get("TVWIDGET_FAIL_OPEN") == "1"
