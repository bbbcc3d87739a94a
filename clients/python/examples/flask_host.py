"""A complete tvwidget host in Flask: the ticket page, the close guard, the webhook."""
import os

from flask import Flask, request

import tvwidget_host as tv

app = Flask(__name__)
SECRET = os.environ["TVWIDGET_EMBED_SECRET"]
api = tv.HostClient(os.environ["TVWIDGET_URL"], os.environ["TVWIDGET_HOST_API_KEY"])
seen, timeline = set(), []  # in production: tables, the event id under a unique constraint


@app.get("/tickets/<ticket_id>")
def ticket_page(ticket_id):
    token = tv.sign_launch_token(SECRET, sub="42", name="Alex Morgan", email="alex@helpdesk.example",
                                 ticket={"id": ticket_id, "subject": "Printer offline",
                                         "requester": {"name": "Jo Doe", "email": "jo@example.com"}})
    return (f'<script src="{api.base_url}/embed/embed.js" async></script>'
            f'<div data-tvwidget-embed data-tvwidget-token="{token}"></div>')


@app.post("/tickets/<ticket_id>/close")
def close_ticket(ticket_id):
    try:
        api.close_ticket(ticket_id)  # before closing it here
    except tv.ActiveServiceCase as refusal:
        return {"error": refusal.message, "session_code": refusal.case["code"]}, 409
    except tv.TVWidgetError as failure:  # unreachable, wrong key...: refuse the close too
        return {"error": failure.message}, 503
    return {"closed": ticket_id}


@app.post("/hooks/tvwidget")
def webhook():
    try:
        event = tv.verify_webhook(request.get_data(), request.headers.get(tv.WEBHOOK_SIGNATURE_HEADER),
                                  SECRET, seen=seen)
    except tv.DuplicateDelivery:
        return "", 204  # processed before: acknowledge, or tvwidget retries
    except tv.WebhookError as refusal:
        return refusal.message, 400
    if event.comment:
        timeline.append((event.ticket_id, event.comment))
    seen.add(event.id)
    return "", 204
