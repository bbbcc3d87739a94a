from django.db import models
from django.utils.translation import gettext_lazy as _


class ReceivedEvent(models.Model):
    """A tvwidget webhook event this helpdesk has taken in (each id once; each case's end written once)."""

    event_id = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=40)
    ticket_id = models.CharField(max_length=64)
    code = models.CharField(max_length=40, blank=True)
    # The case's code once its end (closed or expired) has been written: a second end event is not written.
    ended_code = models.CharField(max_length=40, unique=True, null=True, blank=True)
    followup = models.ForeignKey("helpdesk.FollowUp", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("tvwidget webhook event")
        verbose_name_plural = _("tvwidget webhook events")

    def __str__(self):
        return f"{self.kind} {self.code} (ticket {self.ticket_id})"
