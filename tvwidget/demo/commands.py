"""The demo's commands, added to ``flask tvwidget`` by the demo app only."""
import click
from flask.cli import AppGroup

from tvwidget.config import setting
from tvwidget.demo.host import DEMO_TICKETS
from tvwidget.extensions import db
from tvwidget.host.tokens import parse_ticket, save_ticket
from tvwidget.storage import audit, secrets
from tvwidget.storage.models import utcnow
from tvwidget.teamviewer import integration

demo_cli = AppGroup("tvwidget", help="tvwidget maintenance and demo commands.")


@demo_cli.command("demo-setup")
def demo_setup():
    """Connect the TeamViewer sandbox and store the demo tickets (demo mode only)."""
    if setting("ENV") != "demo":
        raise click.ClickException("demo-setup runs only with TVWIDGET_ENV=demo.")
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
