"""The web layer: blueprints for the widget, the admin area, the host API and health; forms and security headers."""
