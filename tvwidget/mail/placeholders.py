"""The invitation template language: ``{name}`` from an allowlist, ``{{``/``}}`` for braces.

Deliberately not Jinja and not ``str.format`` (no template injection): a
template is admin-written text, and the only thing it can do is name one of
the values below.  ``render`` is a single regular-expression pass, so a value
is never read as template text itself.
"""
import re

# The supporter link is deliberately absent: it must never reach the customer.
PLACEHOLDERS = (
    "requester_name", "requester_email", "ticket_id", "ticket_subject",
    "technician_name", "technician_email", "session_code", "customer_link",
    "valid_until", "company_name",
)
# Names an admin might reach for that must stay out of customer email.
FORBIDDEN = ("supporter_link",)

# Kinds of problem ``problem_kind`` reports, for the editor's messages.
UNKNOWN = "unknown"        # {foo}: not in the allowlist
FORBIDDEN_NAME = "forbidden"  # {supporter_link}
ACCESS = "access"          # {a.b}, {a[0]}: attribute or index access
CODE = "code"              # {% ... %}, {# ... #}: Jinja syntax
BRACE = "brace"            # a lone { or }

_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_ACCESS_RE = re.compile(r"[.\[\]]")


def problems(template: str) -> list[str]:
    """Return each offending token in ``template`` once, in order of appearance."""
    found = []
    for match in _TOKEN_RE.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None or match.group(1) not in PLACEHOLDERS:
            found.append(token)
    return list(dict.fromkeys(found))


def problem_kind(token: str) -> str:
    """Return why ``token`` (one of ``problems()``) is refused: one of the kinds above."""
    if token in ("{", "}"):
        return BRACE
    name = token[1:-1]
    if name[:1] in ("%", "#"):
        return CODE
    if name.strip() in FORBIDDEN:
        return FORBIDDEN_NAME
    if _ACCESS_RE.search(name):
        return ACCESS
    return UNKNOWN


def render(template: str, values: dict[str, str], escape=None) -> str:
    """Substitute ``values`` into a template that :func:`problems` accepted.

    Only allowlisted names are ever looked up; anything else is left as it
    stands.  ``escape`` is applied to every value (``markupsafe.escape`` for HTML).
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
