"""The WSGI entry point: ``gunicorn wsgi:app``, ``flask --app wsgi ...``."""
from tvwidget import create_app

app = create_app()
