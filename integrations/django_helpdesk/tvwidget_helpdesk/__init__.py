"""django-helpdesk as a tvwidget host (SPEC H3): the widget on the ticket page, the close guard on every
path that closes a ticket, tvwidget's comments as private follow-ups, a link to tvwidget's admin area."""
