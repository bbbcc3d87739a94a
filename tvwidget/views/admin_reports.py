"""The TeamViewer Sessions Summary page in the admin area (F10, G6)."""
from .admin import bp  # noqa: F401  (routes are added to the admin blueprint)
