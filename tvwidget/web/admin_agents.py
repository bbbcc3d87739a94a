"""Agents and their TeamViewer users in the admin area: matches, overrides, refresh, sharing the group."""
from flask import g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from tvwidget.extensions import db
from tvwidget.storage.secrets import SecretUnreadable
from tvwidget.teamviewer import directory, integration
from tvwidget.teamviewer.client import USERID_RE, TeamViewerError
from tvwidget.web.admin import bp


def _no_group(name: str):
    return _l("TeamViewer has no group %(group)s yet: it is created with the first service case. "
              "Start one service case, then share the group.", group=name)


def _choices(users) -> list[tuple[str, str]]:
    return [("auto", str(_l("Automatic (by email)"))), (directory.DONT_ASSIGN, str(_l("Don't assign")))] + [
        (user.userid, f"{user.name or user.userid} <{user.email or '-'}>" + ("" if user.active is not False
                                                                               else f" ({_l('inactive')})"))
        for user in users]


def _page(status: int = 200, **extra):
    row = integration.settings()
    agents = directory.agents()
    users = directory.directory_users()
    sharing = directory.sharing(row.group_name)
    if sharing.error == "no_group":
        share_problem = _no_group(row.group_name)
    elif sharing.error:
        share_problem = _l("TeamViewer did not show the group (%(reason)s). Press “Refresh now” to ask again.",
                           reason=sharing.error)
    elif sharing.checked_at is None:
        share_problem = _l("Not read from TeamViewer yet: press “Refresh now” to see who has accepted.")
    else:
        share_problem = None
    context = dict(
        settings=row, connected=row.connected, agents=agents, matches=directory.matches(agents),
        state=directory.state(), problems=directory.DIRECTORY_PROBLEMS, choices=_choices(users),
        user_names={user.userid: user.name for user in users}, sharing=sharing, shares=sharing.shares,
        share_problem=share_problem, owners=directory.owner_userids(),
        saved=request.args.get("saved"), refreshed=request.args.get("refreshed"),
        shared_now=request.args.get("shared", type=int),
        config_refresh_minutes=max(1, round(directory.refresh_window().total_seconds() / 60)),
    ) | extra
    db.session.rollback()
    return render_template("tvwidget/admin/agents.html", **context), status


@bp.get("/agents")
def agents():
    """List the agents seen so far with their TeamViewer user and match, the directory's state and sharing."""
    return _page()


@bp.post("/agents/refresh")
def agents_refresh():
    """Fetch the directory now (the refresh button), whatever the window and back-off say."""
    directory.refresh_due(force=True)
    return redirect(url_for(".agents", refreshed=1), 303)


@bp.post("/agents/<path:agent_id>/user")
def agents_set(agent_id: str):
    """Set an agent's TeamViewer user, back to automatic, or "don't assign"; the override always wins."""
    # A typed user id (offered while there is no directory to choose from) beats the list's choice.
    choice = request.form.get("userid", "").strip() or request.form.get("choice", "")
    if choice not in ("auto", directory.DONT_ASSIGN) and not USERID_RE.fullmatch(choice):
        return _page(422, form_error=_l("Choose a TeamViewer user from the list."))
    if directory.set_override(agent_id, choice, g.tvwidget_agent) is None:
        db.session.rollback()
        return _page(404, form_error=_l("tvwidget has not seen this agent."))
    db.session.commit()
    return redirect(url_for(".agents", saved=agent_id, _anchor=f"agent-{agent_id}"), 303)


@bp.post("/agents/share")
def agents_share():
    """Share the case group (readwrite) with every agent whose cases are assigned to them."""
    row = integration.settings()
    try:
        client = integration.connected_client(row)
    except SecretUnreadable:
        client = None
    if client is None:
        return redirect(url_for(".settings"), 303)
    with client:
        try:
            group, shared = directory.share_group(client, row.group_name, g.tvwidget_agent)
        except TeamViewerError as exc:
            db.session.rollback()
            return _page(502, share_error=_l("TeamViewer did not share the group: %(reason)s", reason=exc.message))
    db.session.commit()
    if group is None:
        return _page(409, share_error=_no_group(row.group_name))
    return redirect(url_for(".agents", shared=len(shared), _anchor="sharing"), 303)
