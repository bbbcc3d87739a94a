"""The webhook receiver, the launch-token refresh for the embed script, and the link to tvwidget's admin area."""
import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import user_passes_test
from django.db import IntegrityError, transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from helpdesk.decorators import helpdesk_staff_member_required
from helpdesk.models import FollowUp, Ticket

from tvwidget_host import (
    WEBHOOK_SIGNATURE_HEADER,
    DuplicateDelivery,
    InvalidPayload,
    InvalidSignature,
    StaleDelivery,
    sign_launch_token,
    verify_webhook,
)

from . import conf, mapping
from .models import ReceivedEvent

log = logging.getLogger(__name__)
ENDS = ("service_case.closed", "service_case.expired")


def launch_token(user, ticket=None, ttl=None) -> str:
    """A launch token for ``user`` (and ``ticket``'s widget), signed with the embed secret."""
    return sign_launch_token(conf.get("TVWIDGET_EMBED_SECRET"), **mapping.agent_claims(user),
                             ticket=mapping.ticket_claim(ticket) if ticket is not None else None,
                             ttl=ttl or int(conf.get("TVWIDGET_TOKEN_TTL")))


@helpdesk_staff_member_required
@require_POST
def token(request, ticket_id):
    """A fresh launch token for the ticket's widget (the embed script's ``tvwidget:token-needed``)."""
    ticket = get_object_or_404(Ticket, pk=ticket_id)
    return JsonResponse({"token": launch_token(request.user, ticket)}, headers={"Cache-Control": "no-store"})


@user_passes_test(lambda user: user.is_active and user.is_superuser)
def admin_area(request):
    """Open tvwidget's admin area as an administrator (superusers only)."""
    signed = launch_token(request.user, ttl=60)
    response = HttpResponseRedirect(f"{conf.public_url()}/embed/admin?token={signed}")
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def _agent(service_case: dict, kind: str):
    """The helpdesk user the case's end is attributed to: who stopped it, else who opened it."""
    people = [service_case.get("closed_by") if kind == "service_case.closed" else None, service_case.get("opened_by")]
    for person in people:
        sub = str((person or {}).get("id") or "")
        if sub.isdigit():
            user = get_user_model().objects.filter(pk=int(sub), is_active=True).first()
            if user is not None:
                return user
    return None


def _ticket(ticket_id):
    ticket = Ticket.objects.filter(pk=int(ticket_id)).first() if str(ticket_id).isdigit() else None
    seen = set()
    while ticket is not None and ticket.merged_to_id and ticket.pk not in seen:  # follow merges
        seen.add(ticket.pk)
        ticket = ticket.merged_to
    return ticket


@csrf_exempt
@require_POST
def webhook(request):
    """tvwidget's signed ``service_case.*`` events; a case's end becomes one private follow-up."""
    try:
        event = verify_webhook(request.body, request.headers.get(WEBHOOK_SIGNATURE_HEADER, ""),
                               conf.get("TVWIDGET_EMBED_SECRET"), max_age=conf.get("TVWIDGET_WEBHOOK_MAX_AGE"),
                               seen=lambda event_id: ReceivedEvent.objects.filter(event_id=event_id).exists())
    except InvalidSignature:
        return JsonResponse({"error": "invalid_signature", "message": "The signature does not match."}, status=401)
    except StaleDelivery as exc:
        return JsonResponse({"error": "stale_delivery", "message": exc.message}, status=400)
    except DuplicateDelivery:
        return JsonResponse({"status": "duplicate"})
    except InvalidPayload as exc:
        return JsonResponse({"error": "invalid_payload", "message": exc.message}, status=400)
    case = event.service_case or {}
    code = str(case.get("code") or "")
    ended = event.type in ENDS and bool(event.comment)
    try:
        with transaction.atomic():
            record = ReceivedEvent.objects.create(event_id=event.id, kind=event.type, ticket_id=str(event.ticket_id),
                                                  code=code, ended_code=code or event.id if ended else None)
            ticket = _ticket(event.ticket_id) if ended else None
            if ticket is not None:
                head, _, rest = event.comment.strip().partition("\n")  # tvwidget's first line is its headline
                record.followup = FollowUp.objects.create(
                    ticket=ticket, date=timezone.now(), title=head[:200], comment=rest.strip() or head,
                    public=False, user=_agent(case, event.type))
                record.save(update_fields=["followup"])
            elif ended:
                log.warning("tvwidget webhook %s: ticket %s is not here; nothing written", event.id, event.ticket_id)
    except IntegrityError:  # this event, or this case's end, was taken in before
        return JsonResponse({"status": "duplicate"})
    return JsonResponse({"status": "received"})
