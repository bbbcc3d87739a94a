"""Response headers for every tvwidget page, and the fetch-metadata check on changes."""
from flask import Response, current_app, request

STRICT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")


def headers(frameable: bool, frame_src=None):
    """Return an ``after_request`` hook setting tvwidget's security headers.

    ``frameable`` pages (the widget) may be framed by the configured helpdesk
    origins and carry no X-Frame-Options, which would block the embed.
    ``frame_src`` is a callable returning the origins this page may frame.
    """
    def apply(response: Response) -> Response:
        ancestors = current_app.config["FRAME_ANCESTORS"] if frameable else "'none'"
        csp = f"{STRICT_CSP}; frame-ancestors {ancestors}"
        if frame_src is not None:
            csp += f"; frame-src {frame_src()}"
        response.headers["Content-Security-Policy"] = csp
        if not frameable:
            response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response

    return apply


def same_origin_request() -> bool:
    """Return whether a state-changing request comes from tvwidget's own pages.

    Browsers send Sec-Fetch-Site; older ones at least send Origin on POST.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin is None or origin == request.host_url.rstrip("/")
