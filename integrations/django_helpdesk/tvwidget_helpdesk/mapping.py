"""django-helpdesk's ticket and user, as tvwidget's host contract describes them (SPEC H3 field mapping)."""
from django.contrib.auth import get_user_model
from django.utils import timezone, translation
from helpdesk import settings as helpdesk_settings

from . import conf

SOURCE_EMAIL, SOURCE_TECHNICIAN, SOURCE_PORTAL = "Email", "Technician portal", "User portal"


def status_key(status: int) -> str:
    """A fixed key for a django-helpdesk status (never its translated label)."""
    keys = {
        helpdesk_settings.OPEN_STATUS: "open",
        helpdesk_settings.REOPENED_STATUS: "reopened",
        helpdesk_settings.RESOLVED_STATUS: "resolved",
        helpdesk_settings.CLOSED_STATUS: "closed",
        helpdesk_settings.DUPLICATE_STATUS: "duplicate",
    }
    return keys.get(status, f"status-{status}")


def priority_label(priority) -> str | None:
    mapping = conf.get("TVWIDGET_PRIORITY_MAP")
    try:
        return mapping.get(int(priority)) or mapping.get(str(priority))
    except (TypeError, ValueError):
        return None


def source(ticket) -> str:
    """How the ticket arrived: email when its first follow-up came in by mail, else who wrote it."""
    first = ticket.followup_set.order_by("date", "id").first()
    if first is not None and first.message_id:
        return SOURCE_EMAIL
    author = first.user if first is not None else None
    return SOURCE_TECHNICIAN if author is not None and author.is_staff else SOURCE_PORTAL


def requester_name(ticket) -> str:
    if not ticket.submitter_email:
        return ""
    user = get_user_model().objects.filter(email__iexact=ticket.submitter_email).first()
    return user.get_full_name() if user is not None else ""


def ticket_type(ticket) -> str | None:
    field = conf.get("TVWIDGET_TYPE_FIELD")
    if not field:
        return None
    value = ticket.ticketcustomfieldvalue_set.filter(field__name=field).values_list("value", flat=True).first()
    return value or None


def ticket_claim(ticket) -> dict:
    """The launch token's ``ticket`` (also the host API's ticket body)."""
    return {
        "id": str(ticket.pk),
        "subject": ticket.title,
        "requester": {"name": requester_name(ticket), "email": ticket.submitter_email or ""},
        "category": ticket.queue.title,
        "type": ticket_type(ticket),
        "priority": priority_label(ticket.priority),
        "source": source(ticket),
        "status": status_key(ticket.status),
    }


def agent_claims(user) -> dict:
    """The person in front of the widget: ``sub`` is the user's primary key as a string."""
    language = translation.get_language() or "en"
    return {
        "sub": str(user.pk),
        "name": user.get_full_name() or user.get_username(),
        "email": user.email or "",
        "role": "admin" if user.is_superuser else "agent",
        "locale": "ja" if language.lower().startswith("ja") else "en",
        "tz": timezone.get_current_timezone_name(),
    }
