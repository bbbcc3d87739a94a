"""The close guard: a ticket with an open TeamViewer service case cannot be closed, on any path.

django-helpdesk has no veto hook, so the guard is a ``pre_save`` receiver on ``Ticket``: every path that
closes a ticket (respond form, accept-and-close, bulk close, merge, kanban, REST API, Django admin, plain
``save()``) saves the ticket, and a save that moves it from an open status into any other is first put
to tvwidget's host API.  A refusal is an exception, :class:`CloseRefused`; ``middleware`` turns it into a
message on the page the person came from, JSON 409 for the kanban board, and DRF answers it with 409 itself.
"""
import contextvars
import logging

from django.contrib import messages
from django.db import transaction
from django.utils.translation import gettext as _
from helpdesk.models import Ticket
from rest_framework import status
from rest_framework.exceptions import APIException

from tvwidget_host import TVWidgetError, Unauthorized, Unavailable

from . import conf, mapping
from .client import host_client

log = logging.getLogger(__name__)

# The request being served, so that the guard can leave a warning when it fails open.
current_request = contextvars.ContextVar("tvwidget_helpdesk_request", default=None)


class CloseRefused(APIException):
    """The ticket may not be closed now (a DRF exception: the REST API answers 409 by itself)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "active_service_case"

    def __init__(self, message: str, *, code: str = "active_service_case", ticket_id=None, service_case=None):
        self.message = message
        self.error_code = code
        self.ticket_id = ticket_id
        self.service_case = service_case
        super().__init__({"detail": message, "error": code, "service_case": service_case}, code)

    def __str__(self):
        return self.message


def is_open(status_value) -> bool:
    return status_value in Ticket.OPEN_STATUSES


def active_case_message(ticket_id, case: dict) -> str:
    opened_by = case.get("opened_by")
    if isinstance(opened_by, dict):
        opened_by = opened_by.get("name") or opened_by.get("id")
    return _("Ticket %(id)s cannot be closed: TeamViewer service case %(code)s, opened by %(name)s, is still "
             "open. Stop it in the ticket's TeamViewer widget, then close the ticket. Nothing was changed.") % {
        "id": ticket_id, "code": case.get("code") or "…", "name": opened_by or "?"}


def check_can_close(ticket_id) -> None:
    """Raise :class:`CloseRefused` unless tvwidget says ticket ``ticket_id`` has no open service case.

    A read (``GET …/service-case``), not the host API's ``close`` call, which also records the ticket closed
    at tvwidget: a bulk close refused on its third ticket must leave the first two open on both sides.
    tvwidget learns the new status once the close is committed (:func:`remember_close`).
    """
    request = current_request.get()
    fail_open = conf.get("TVWIDGET_FAIL_OPEN")
    try:
        if fail_open and getattr(request, "tvwidget_unreachable", False):
            # Already unreachable in this request (a bulk close): do not wait for it once per ticket.
            raise Unavailable("tvwidget was unreachable earlier in this request", code="unavailable")
        case = host_client().service_case(str(ticket_id))
    except TVWidgetError as exc:
        log.warning("tvwidget close guard for ticket %s: %s (%s)", ticket_id, exc.code, exc.status)
        if fail_open:
            warned = getattr(request, "tvwidget_warned", set())
            if request is not None and str(ticket_id) not in warned:  # asked twice in bulk close: said once
                request.tvwidget_unreachable = True
                request.tvwidget_warned = warned | {str(ticket_id)}
                messages.warning(request, _(
                    "TeamViewer (tvwidget) could not be reached to check ticket %(id)s for an open service "
                    "case; it was closed anyway (TVWIDGET_FAIL_OPEN).") % {"id": ticket_id})
            return
        if isinstance(exc, Unauthorized):
            message = _("Ticket %(id)s was not closed: tvwidget refused this helpdesk's host API key, so open "
                        "TeamViewer service cases cannot be checked. An administrator must correct "
                        "TVWIDGET_HOST_API_KEY. Nothing was changed.") % {"id": ticket_id}
        else:
            message = _("Ticket %(id)s was not closed: TeamViewer (tvwidget) could not be reached to check for "
                        "an open service case. Nothing was changed; try again in a moment.") % {"id": ticket_id}
        raise CloseRefused(message, code="tvwidget_unavailable", ticket_id=ticket_id) from exc
    if case:
        raise CloseRefused(active_case_message(ticket_id, case), ticket_id=ticket_id, service_case=case)


def refuse_close_while_case_open(sender, instance, raw=False, **kwargs):
    """``pre_save`` on ``Ticket``: refuse moving a stored ticket into another non-open status (open to resolved,
    closed or duplicate; resolved to closed) while tvwidget has a service case open on it."""
    if raw or instance.pk is None or is_open(instance.status):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("status", flat=True).first()
    if stored is None or stored == instance.status:
        return  # a new row, or no change of status (the ticket is saved several times per update)
    check_can_close(instance.pk)
    instance.tvwidget_closed_now = True  # for remember_close, once the row is saved


def remember_close(sender, instance, raw=False, **kwargs):
    """``post_save`` on ``Ticket``: once a close is committed, tell tvwidget the ticket's new status."""
    if raw or not getattr(instance, "tvwidget_closed_now", False):
        return
    instance.tvwidget_closed_now = False
    claim = mapping.ticket_claim(instance)

    def tell():
        if getattr(current_request.get(), "tvwidget_unreachable", False):
            return  # it could not even be asked; the next launch token carries the status anyway
        try:
            host_client().put_ticket(claim["id"], claim)
        except TVWidgetError as exc:  # only a record for tvwidget's reports; the close stands
            log.warning("tvwidget: ticket %s closed here, but its status was not recorded there (%s)",
                        claim["id"], exc.code)

    transaction.on_commit(tell)
