"""``flask --app wsgi tvwidget seed-demo``: realistic synthetic closed cases for demos and benchmarks."""
from .cli import cli  # noqa: F401  (commands here join the ``tvwidget`` group)
