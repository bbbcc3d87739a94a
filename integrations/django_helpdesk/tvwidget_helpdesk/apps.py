from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TVWidgetHelpdeskConfig(AppConfig):
    name = "tvwidget_helpdesk"
    label = "tvwidget_helpdesk"
    verbose_name = _("TeamViewer (tvwidget)")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_save, pre_save
        from helpdesk.models import Ticket

        from . import checks  # noqa: F401  (registers the system checks)
        from .guard import refuse_close_while_case_open, remember_close

        pre_save.connect(refuse_close_while_case_open, sender=Ticket, dispatch_uid="tvwidget_close_guard")
        post_save.connect(remember_close, sender=Ticket, dispatch_uid="tvwidget_remember_close")
