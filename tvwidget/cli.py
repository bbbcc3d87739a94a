"""``flask --app wsgi tvwidget ...`` commands."""
import click
from flask import current_app
from flask.cli import AppGroup

from . import audit, cases, integration, secrets
from .extensions import db
from .host import parse_ticket, save_ticket
from .models import utcnow

cli = AppGroup("tvwidget", help="tvwidget maintenance commands.")


@cli.command("expire-cases")
def expire_cases():
    """Record every service case past its expiry as expired (run from cron)."""
    count = cases.expire_overdue()
    db.session.commit()
    click.echo(f"{count} service case(s) expired.")


@cli.command("demo-setup")
def demo_setup():
    """Connect the TeamViewer sandbox and store the demo tickets (demo mode only)."""
    if current_app.config["ENV"] != "demo":
        raise click.ClickException("demo-setup runs only with TVWIDGET_ENV=demo.")
    from .demo_host import DEMO_TICKETS

    row = db.session.merge(integration.settings())
    if not row.connected:
        token = "sandbox-demo-token-0000"
        row.token_ciphertext = secrets.encrypt(token)
        row.token_last4 = token[-4:]
        row.account_name, row.account_email = "Sandbox Supporter", "sandbox@example.com"
        row.company_name, row.connected_by_name = "TeamViewer Sandbox", "make run"
        row.connected_by_id = "demo"
        row.connected_at = utcnow()
        audit.record("connected", None, account="Sandbox Supporter", last4=row.token_last4, by="demo-setup")
    for data in DEMO_TICKETS.values():
        save_ticket(parse_ticket(data))
    db.session.commit()
    click.echo("Demo ready: TeamViewer sandbox connected, demo tickets stored.")
