"""``flask --app wsgi tvwidget ...`` commands."""
import click
import sqlalchemy as sa
from flask.cli import AppGroup

from tvwidget.cases import lifecycle as cases
from tvwidget.extensions import db
from tvwidget.storage import audit, secrets
from tvwidget.storage.models import IntegrationSettings

cli = AppGroup("tvwidget", help="tvwidget maintenance commands.")


@cli.command("expire-cases")
def expire_cases():
    """Record every service case past its expiry as expired (run from cron)."""
    count = cases.expire_overdue()
    db.session.commit()
    click.echo(f"{count} service case(s) expired.")


@cli.command("rotate-keys")
def rotate_keys():
    """Re-encrypt every stored secret with the newest TVWIDGET_ENCRYPTION_KEYS key (safe to re-run).

    Add the new key first in TVWIDGET_ENCRYPTION_KEYS, run this, then drop the old key.
    """
    rows = db.session.scalars(sa.select(IntegrationSettings).where(IntegrationSettings.token_ciphertext.is_not(None))
                              .order_by(IntegrationSettings.id)).all()
    rotated = current = unreadable = 0
    for row in rows:
        if secrets.is_current(row.token_ciphertext):
            current += 1
            continue
        try:
            row.token_ciphertext = secrets.rotate(row.token_ciphertext)
        except secrets.SecretUnreadable:
            unreadable += 1
            click.echo(f"The TeamViewer script token (settings {row.id}) cannot be decrypted with any key in "
                       "TVWIDGET_ENCRYPTION_KEYS; it was left as it is. An administrator must enter the script "
                       "token again in the tvwidget admin area.", err=True)
            continue
        rotated += 1
    if rotated:
        audit.record("keys_rotated", None, rotated=rotated)
    db.session.commit()
    if not rows:
        click.echo("No stored secrets: nothing to re-encrypt.")
    else:
        click.echo(f"{rotated} secret(s) re-encrypted with the newest key, {current} already used it, "
                   f"{unreadable} unreadable.")
    if unreadable:
        click.get_current_context().exit(1)


from tvwidget.mail.outbox import outbox_cli  # noqa: E402

cli.add_command(outbox_cli)


TOKEN_UNREADABLE = "The stored TeamViewer token cannot be decrypted; an admin must enter it again."


@cli.command("reconcile")
def reconcile_command():
    """Match service cases with TeamViewer after crashes and timeouts (run from cron)."""
    from tvwidget.cases import reconcile
    from tvwidget.storage.secrets import SecretUnreadable
    from tvwidget.teamviewer.client import TeamViewerError

    try:
        outcome = reconcile.run()
    except SecretUnreadable:
        raise click.ClickException(TOKEN_UNREADABLE) from None
    except TeamViewerError as exc:
        raise click.ClickException(f"TeamViewer: {exc}") from exc
    if outcome is None:
        click.echo("TeamViewer is not connected: nothing to reconcile.")
        return
    click.echo(f"adopted {outcome.adopted}, failed {outcome.failed}, closed at TeamViewer "
               f"{outcome.closed_remotely}, errors {outcome.errors}")


@cli.command("sync-connections")
def sync_connections_command():
    """Store TeamViewer's connection reports of stopped and expired cases (run from cron; retries for 48 h)."""
    from tvwidget.cases import connections
    from tvwidget.storage.secrets import SecretUnreadable

    try:
        outcome = connections.sync()
    except SecretUnreadable:
        raise click.ClickException(TOKEN_UNREADABLE) from None
    if outcome is None:
        click.echo("TeamViewer is not connected: no connection reports to read.")
        return
    click.echo(f"{outcome.synced} case(s) synced, {outcome.waiting} still waiting for TeamViewer's report, "
               f"{outcome.errors} error(s).")


from tvwidget.host.webhook import webhook_cli  # noqa: E402

cli.add_command(webhook_cli)


directory_cli = AppGroup("directory", help="The TeamViewer company directory (agent -> TeamViewer user).")


@directory_cli.command("refresh")
@click.option("--force", is_flag=True, help="Fetch now, whatever the refresh window and back-off say.")
def directory_refresh_command(force):
    """Fetch the company directory if it is due (at most once per window across every process)."""
    from tvwidget.teamviewer import directory

    counts = directory.refresh_due(force=force)
    click.echo(f"fetched {counts['fetched']}, users {counts['users']}, status {counts['status']}")


cli.add_command(directory_cli)

from tvwidget.ops.doctor import doctor_command  # noqa: E402
from tvwidget.ops.worker import run_due_command, worker_command  # noqa: E402

cli.add_command(worker_command)
cli.add_command(run_due_command)
cli.add_command(doctor_command)
