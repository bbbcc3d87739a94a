"""The invitation template language: ``{name}`` from an allowlist, ``{{``/``}}`` for braces.

Deliberately not Jinja and not ``str.format`` (RELIABILITY decision 5): a
template is admin-written text, and the only thing it can do is name one of
the values below.
"""
import re

# The supporter link is deliberately absent: it must never reach the customer.
PLACEHOLDERS = (
    "requester_name", "requester_email", "ticket_id", "ticket_subject",
    "technician_name", "technician_email", "session_code", "customer_link",
    "valid_until", "company_name",
)

_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def problems(template: str) -> list[str]:
    """Return each offending token in ``template`` (unknown names, stray braces)."""
    found = []
    for match in _TOKEN_RE.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None or match.group(1) not in PLACEHOLDERS:
            found.append(token)
    return list(dict.fromkeys(found))


def render(template: str, values: dict[str, str], escape=None) -> str:
    """Substitute ``values`` into a template that :func:`problems` accepted.

    ``escape`` is applied to every value (``markupsafe.escape`` for HTML).
    """
    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name is None or name not in PLACEHOLDERS:
            return token
        value = str(values.get(name, ""))
        return str(escape(value)) if escape else value

    return _TOKEN_RE.sub(replace, template)
