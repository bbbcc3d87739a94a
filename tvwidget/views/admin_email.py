"""The invitation template editor in the admin area (F9)."""
from .admin import bp  # noqa: F401  (routes are added to the admin blueprint)
