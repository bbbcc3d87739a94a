"""Response headers for every tvwidget page, the fetch-metadata check on changes, refused-launch logging."""
import hashlib
import logging
import re
from urllib.parse import urlsplit

from flask import Response, current_app, request
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms.validators import ValidationError

from tvwidget.config import MAX_REQUEST_BYTES, setting, standalone
from tvwidget.web import admin_entry

log = logging.getLogger(__name__)
LAUNCH_ENDPOINTS = ("tvwidget.launch", "tvwidget_admin.launch")

CSP_SOURCES = "default-src 'self'; script-src 'self'{embeds}; style-src 'self'; img-src 'self' data:; " \
              "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'{embeds}"
STRICT_CSP = CSP_SOURCES.format(embeds="")


def headers(frameable: bool, embeds=None):
    """Return an ``after_request`` hook setting tvwidget's security headers.

    ``frameable`` pages (the widget) may be framed by the configured helpdesk
    origins, the others by no one (``frame-ancestors 'none'``).  No page sends
    X-Frame-Options: CSP's frame-ancestors replaces
    it, and a DENY beside an allow-list would only confuse an old browser.
    ``embeds`` is a callable returning the tvwidget origin a host page embeds
    the widget from (the demo's ticket page): that page may load its
    ``embed.js``, frame it and POST the launch token into the frame.
    """
    def apply(response: Response) -> Response:
        ancestors = setting("FRAME_ANCESTORS") if frameable else "'none'"
        if embeds is None:
            csp = f"{STRICT_CSP}; frame-ancestors {ancestors}"
        else:
            origin = embeds()
            csp = f"{CSP_SOURCES.format(embeds=' ' + origin)}; frame-ancestors {ancestors}; frame-src {origin}"
        # Werkzeug answers a missing header with an exception (a costly one): look at the names once.
        present = {name.lower() for name, _ in response.headers}
        fixed = (("Content-Security-Policy", csp), ("X-Content-Type-Options", "nosniff"),
                 ("Referrer-Policy", "no-referrer"))
        for name, value in fixed:
            if name.lower() in present:
                response.headers[name] = value
            else:
                response.headers.add(name, value)
        if "cache-control" not in present:
            response.headers.add("Cache-Control", "no-store")
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response

    return apply


_CSP_SOURCE_RE = re.compile(r"^(https?)://([^:/]+)(?::(\d{1,5}|\*))?$")
_ORIGIN_RE = re.compile(r"^(https?)://([a-z0-9.-]+)(?::(\d{1,5}))?$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def allowed_host_origin(origin: str | None) -> str | None:
    """Return ``origin`` (a host page's, as ``location.origin`` spells it) if ``FRAME_ANCESTORS`` allows it.

    Matched as CSP matches a host-source: same scheme, the host itself or
    ``*.domain`` for its subdomains, and the port given, the scheme's default,
    or any with ``:*``.  ``'self'`` is tvwidget's own origin.  Anything else,
    or an ``Origin`` header naming another page than the one the form says, is None.
    """
    match = _ORIGIN_RE.match((origin or "").lower())
    if match is None:
        return None
    sent = request.headers.get("Origin")
    if sent and sent != "null" and sent.lower() != origin.lower():
        return None
    scheme, host, port = match.group(1), match.group(2), match.group(3) or _DEFAULT_PORTS[match.group(1)]
    for source in setting("FRAME_ANCESTORS").split():
        if source == "'self'":
            if origin.lower() == request.host_url.rstrip("/").lower():
                return origin.lower()
            continue
        allowed = _CSP_SOURCE_RE.match(source.lower())
        if allowed is None or allowed.group(1) != scheme:
            continue
        pattern, allowed_port = allowed.group(2), allowed.group(3) or _DEFAULT_PORTS[scheme]
        host_ok = host.endswith(pattern[1:]) and len(host) > len(pattern) - 1 if pattern.startswith("*.") \
            else host == pattern
        if host_ok and allowed_port in ("*", port):
            return origin.lower()
    return None


def limit_request_size() -> None:
    """In a host app, cap what a request to tvwidget may send (413 beyond), whatever the host allows its pages.

    The standalone app's ``MAX_CONTENT_LENGTH`` (``TVWIDGET_MAX_CONTENT_LENGTH``)
    already caps every route.  A ``before_request`` hook of each tvwidget
    blueprint that reads a body, registered before the hooks that read it.
    """
    if current_app.extensions.get("tvwidget_standalone"):
        return
    for limit in ("max_content_length", "max_form_memory_size"):
        allowed = getattr(request, limit)
        if allowed is None or allowed > MAX_REQUEST_BYTES:
            setattr(request, limit, MAX_REQUEST_BYTES)


def same_origin_request() -> bool:
    """Return whether a state-changing request comes from tvwidget's own pages.

    Browsers send Sec-Fetch-Site; older ones at least send Origin on POST,
    and the oldest only a Referer, whose origin must then be ours.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    own = request.host_url.rstrip("/")
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == own
    referer = urlsplit(request.headers.get("Referer") or "")
    return not referer.netloc or f"{referer.scheme}://{referer.netloc}" == own


def check_csrf_token() -> None:
    """Check Flask-WTF's CSRF token (form field or header) unless CSRF is switched off; else raise CSRFError.

    tvwidget checks it in its own views instead of registering ``CSRFProtect``,
    whose hook would demand tokens from every POST of a host app that mounts
    tvwidget.  Not ``CSRFProtect.protect()`` either: over HTTPS it also demands
    a same-host Referer, which these pages never send (``Referrer-Policy:
    no-referrer``), so every admin change would fail.  Fetch Metadata
    (``same_origin_request``) checks the origin instead.
    """
    if not setting("WTF_CSRF_ENABLED"):
        return
    token = request.form.get(setting("WTF_CSRF_FIELD_NAME")) or next(
        (request.headers[name] for name in setting("WTF_CSRF_HEADERS") if request.headers.get(name)), None)
    if not standalone():
        # Mounted in a host app: the admin entry's own token (Flask-WTF's would live in the host's session).
        if not admin_entry.csrf_matches(token):
            raise CSRFError("The CSRF token is missing or does not match.")
        return
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CSRFError(exc.args[0]) from None


def log_refused_launch(response: Response) -> Response:
    """Record a refused launch (bad, expired, replayed or foreign token) in the log; never the token itself.

    A log record, not an audit row: these requests are unauthenticated, and a
    database row per attempt would let anyone grow the audit table.  The
    fingerprint (a short SHA-256 of the token) ties repeated attempts together.
    """
    if request.endpoint in LAUNCH_ENDPOINTS and response.status_code in (401, 403):
        raw = (request.form.get("token") if request.method == "POST" else request.args.get("token")) or ""
        log.warning("launch refused: HTTP %s at %s from %s, token %s (%d bytes), user agent %r",
                    response.status_code, request.endpoint, request.remote_addr,
                    hashlib.sha256(raw.encode()).hexdigest()[:12] if raw else "missing", len(raw),
                    (request.user_agent.string or "")[:120])
    return response
