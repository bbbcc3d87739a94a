"""Seed the demo helpdesk: a staff user (a superuser, to reach tvwidget's admin area) and a ticket."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone
from helpdesk.models import FollowUp, Queue, Ticket

from demo_site.demo_login import PASSWORD, USERNAME


class Command(BaseCommand):
    help = "Create the demo agent and ticket (idempotent); print the ticket's id."

    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=USERNAME, defaults={
            "first_name": "Alex", "last_name": "Morgan", "email": "alex.morgan@helpdesk.example",
            "is_staff": True, "is_superuser": True})
        if created:
            user.set_password(PASSWORD)
            user.save()
        User.objects.get_or_create(username="john.doe", defaults={  # the requester, so the widget shows a name
            "first_name": "John", "last_name": "Doe", "email": "john.doe@example.com", "password": "!"})
        queue, _ = Queue.objects.get_or_create(slug="pc", defaults={
            "title": "PC", "email_address": "support@helpdesk.example", "allow_public_submission": True})
        ticket = Ticket.objects.filter(title="Outlook crashes on start", queue=queue).first()
        if ticket is None:
            ticket = Ticket.objects.create(
                title="Outlook crashes on start", queue=queue, submitter_email="john.doe@example.com", priority=2,
                description="Since this morning Outlook closes right after the splash screen. "
                            "I restarted twice. Could someone look at my PC?")
            FollowUp.objects.create(ticket=ticket, title="Ticket opened", date=timezone.now(), public=True,
                                    comment=ticket.description, user=None)
        self.stdout.write(str(ticket.pk))
