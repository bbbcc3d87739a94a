"""Blueprints: the widget, the admin area, the host API and the demo host page."""
