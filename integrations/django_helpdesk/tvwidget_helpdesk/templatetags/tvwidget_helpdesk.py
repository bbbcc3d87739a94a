from django import template

from .. import conf
from ..middleware import DRAFT_SESSION_KEY
from ..views import launch_token

register = template.Library()


@register.inclusion_tag("tvwidget_helpdesk/panel.html", takes_context=True)
def tvwidget_panel(context, ticket):
    """The TeamViewer widget for ``ticket``, for the person viewing the page (staff only)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    staff = user is not None and user.is_authenticated and user.is_staff
    draft = None
    session = getattr(request, "session", None)
    if staff and session is not None and (session.get(DRAFT_SESSION_KEY) or {}).get("ticket") == str(ticket.pk):
        draft = session.pop(DRAFT_SESSION_KEY)["comment"]  # a reply a refused close did not save
    return {
        "show": staff and bool(conf.public_url()),
        "ticket": ticket,
        "tvwidget_url": conf.public_url(),
        "token": launch_token(user, ticket) if staff else "",
        "is_superuser": staff and user.is_superuser,
        "csrf_token": context.get("csrf_token"),
        "request": request,
        "draft": draft,
    }
