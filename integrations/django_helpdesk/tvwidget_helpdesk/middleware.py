"""Where a refused close reaches the person, and bulk close and merge made all-or-nothing.

* HTML pages (respond form, accept-and-close, bulk close, merge, Django admin): the message on the page
  the person came from (``django.contrib.messages``; django-helpdesk's and the admin's base templates show it).
* The kanban board's drag (``kanban-update/``, JSON): ``409 {"error": <the message>, "code": ..., "service_case"}``
  (the board shows ``error`` in its toast).
* The REST API: DRF itself answers :class:`~tvwidget_helpdesk.guard.CloseRefused` with 409.

Bulk close and merge change several tickets in a loop and django-helpdesk opens no transaction.  This
middleware runs those two views inside ``transaction.atomic()`` (so ``ATOMIC_REQUESTS`` is not needed)
and, before they run, asks tvwidget about every ticket they would close, so that no ticket changes and no
email goes out when any one of them is refused.
"""
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import resolve_url
from django.urls import Resolver404, resolve
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from helpdesk.models import Ticket

from .guard import CloseRefused, check_can_close, current_request

JSON_VIEWS = {"helpdesk:kanban_update"}
DRAFT_SESSION_KEY = "tvwidget_helpdesk_reply"
BULK_CLOSE_ACTIONS = {"close", "close_public"}


def _view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return ""
    return match.view_name


def _wants_json(request) -> bool:
    return _view_name(request) in JSON_VIEWS or "application/json" in request.headers.get("Accept", "")


def _back(request, refused: CloseRefused) -> str:
    """The page the person acted on: the referring page of this site, else the ticket, else the start page."""
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
        if request.method != "GET" or referer != request.build_absolute_uri():  # never back into a GET that closes
            return referer
    if request.method == "GET" and "close" in request.GET:  # accept-and-close links: the same page, minus close
        query = request.GET.copy()
        query.pop("close", None)
        return request.path + ("?" + query.urlencode() if query else "")
    if refused.ticket_id is not None and request.user.is_authenticated and request.user.is_staff:
        return resolve_url("helpdesk:view", refused.ticket_id)
    return resolve_url("helpdesk:home")


def refusal_response(request, refused: CloseRefused):
    request.tvwidget_close_refused = True  # the middleware rolls back what the view had done
    if _wants_json(request):
        # django-helpdesk's kanban board shows ``error`` as its toast: it carries the sentence for the person.
        return JsonResponse({"error": refused.message, "code": refused.error_code,
                             "service_case": refused.service_case}, status=409)
    messages.error(request, refused.message)
    _keep_reply(request, refused)
    return HttpResponseRedirect(_back(request, refused))


def _keep_reply(request, refused: CloseRefused) -> None:
    """The respond form's reply was not saved: keep it for the ticket page to put back (nothing lost)."""
    comment = request.POST.get("comment", "") if request.method == "POST" else ""
    if _view_name(request) != "helpdesk:update" or not comment.strip() or not hasattr(request, "session"):
        return
    request.session[DRAFT_SESSION_KEY] = {"ticket": str(refused.ticket_id), "comment": comment}
    messages.info(request, _("Your reply was not sent; it is back in the Respond form."))


def _tickets_to_close(request) -> list[int] | None:
    """The tickets a bulk close or a merge would move out of an open status, or None for other requests."""
    if request.method != "POST":
        return None
    name = _view_name(request)
    if name == "helpdesk:mass_update" and request.POST.get("action") in BULK_CLOSE_ACTIONS:
        ids, target = request.POST.getlist("ticket_id"), Ticket.CLOSED_STATUS
    elif name == "helpdesk:merge_tickets" and request.POST.get("chosen_ticket"):
        chosen = request.POST.get("chosen_ticket")
        ids, target = [value for value in request.GET.getlist("tickets") if value != chosen], Ticket.DUPLICATE_STATUS
    else:
        return None
    ids = [int(value) for value in ids if str(value).isdigit()]
    return sorted(Ticket.objects.filter(pk__in=ids).exclude(status=target).values_list("pk", flat=True))


class CloseGuardMiddleware:
    """Place after ``SessionMiddleware``, ``AuthenticationMiddleware`` and ``MessageMiddleware``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = current_request.set(request)
        try:
            tickets = _tickets_to_close(request)
            if tickets is None:
                return self.get_response(request)
            return self._all_or_nothing(request, tickets)
        finally:
            current_request.reset(token)

    def _all_or_nothing(self, request, tickets):
        # Every ticket is asked before anything changes (no email goes out for a refused bulk), and the
        # view runs in one transaction, rolled back if a ticket is refused on the way (a case opened since).
        # Authentication and CSRF are checked by the view's own middleware and decorators, inside.
        if request.user.is_authenticated and request.user.is_staff:
            try:
                for ticket_id in tickets:
                    check_can_close(ticket_id)
            except CloseRefused as refused:
                return refusal_response(request, refused)
        with transaction.atomic():
            response = self.get_response(request)
            if getattr(request, "tvwidget_close_refused", False):
                transaction.set_rollback(True)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, CloseRefused):
            return refusal_response(request, exception)
        return None
