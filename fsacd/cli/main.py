"""The ``fsacd`` command line: config check, agents, queues, ``serve``. See docs/cli.md."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from fsacd import __version__
from fsacd.cli import agents_io, doctor, floor, supervise
from fsacd.cli.common import (
    App,
    ago,
    console,
    duration,
    echo_json,
    fail,
    handles_errors,
    human,
    is_time_field,
    json_flag,
    new_table,
    pass_app,
    queues_text,
    status_text,
    when,
)
from fsacd.cli.contacts import contacts_group, pop_group
from fsacd.cli.monitor import stats_cmd, watch_cmd, web_cmd
from fsacd.cli.numbers import numbers_group
from fsacd.cli.simulate import simulate
from fsacd.config import ConfigError, load
from fsacd.core import dialstring

# --- the group ------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $FSACD_CONFIG, else ./fsacd.toml).",
)
@click.version_option(__version__, prog_name="fsacd")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """fsacd: call-center ACD controller for FreeSWITCH."""
    ctx.obj = App(config_path)




# --- config ---------------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Check the config file."""


@config_group.command("check")
@json_flag
@pass_app
def config_check(app: App, as_json: bool) -> None:
    """Validate the config; every problem on its own line, exit code 1 if there are any."""
    try:
        cfg = load(app.path)
        errors: list[str] = []
    except ConfigError as exc:
        cfg, errors = None, exc.errors
    if as_json:
        echo_json(
            {
                "path": str(app.path),
                "ok": not errors,
                "errors": errors,
                "queues": len(cfg.queues) if cfg else 0,
                "routes": len(cfg.routes) if cfg else 0,
            }
        )
    elif errors:
        for line in errors:
            click.echo(line, err=True)
    else:
        assert cfg is not None
        click.echo(f"config OK: {len(cfg.queues)} queues, {len(cfg.routes)} routes")
    if errors:
        sys.exit(1)


# --- agents ---------------------------------------------------------------------------------


@main.group("agent")
def agent_group() -> None:
    """Add, remove, log in/out and list agents."""


def _parse_queue_opt(app: App, values: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        name, sep, pos_text = value.partition(":")
        pos = 1
        if sep:
            if not pos_text.isdigit() or not pos_text.isascii():
                fail(f"--queue {value}: the position must be a whole number >= 0")
            pos = int(pos_text)
        if name not in app.cfg.queues:
            known = ", ".join(app.cfg.queues)
            fail(f"unknown queue {name!r} (configured: {known})")
        if name in out:
            fail(f"--queue {value}: queue {name!r} is given twice; give each queue once")
        out[name] = pos
    return out


def _agent_or_fail(app: App, agent_id: str) -> dict[str, Any]:
    agent = app.store.get_agent(agent_id)
    if agent is None:
        fail(f"unknown agent {agent_id!r}")
    return agent


def _report_change(app: App, agent_id: str, as_json: bool, message: str, **extra: Any) -> None:
    if as_json:
        echo_json({"ok": True, **extra, "agent": app.store.get_agent(agent_id)})
    else:
        click.echo(message)


@agent_group.command("add")
@click.argument("agent_id")
@click.option("--contact", required=True, help="Dial string of the agent's phone.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    required=True,
    metavar="NAME[:POSITION]",
    help="A queue the agent serves, with its position (default 1); repeatable.",
)
@json_flag
@pass_app
@handles_errors
def agent_add(app: App, agent_id: str, contact: str, queues: tuple[str, ...], as_json: bool):
    """Add an agent (logged out), or update its contact and queues."""
    positions = _parse_queue_opt(app, queues)
    problem = dialstring.contact_problem(contact)
    if problem:
        fail(f"--contact {problem}")
    app.store.sync_queues(app.cfg.queues)
    created = app.store.add_agent(agent_id, contact, positions)
    verb = "added" if created else "updated"
    _report_change(
        app,
        agent_id,
        as_json,
        f"agent {agent_id} {verb}: {queues_text(positions)}",
        created=created,
    )


@agent_group.command("remove")
@click.argument("agent_id")
@click.option("--yes", "-y", is_flag=True, help="Do it without asking.")
@json_flag
@pass_app
@handles_errors
def agent_remove(app: App, agent_id: str, yes: bool, as_json: bool) -> None:
    """Remove an agent (refused while it is ringing or in a call); asks first unless --yes."""
    agent = _agent_or_fail(app, agent_id)
    if not yes:
        click.confirm(
            f"remove agent {agent_id} ({status_text(agent)}, {queues_text(agent['queues'])})?",
            abort=True,
        )
    app.store.remove_agent(agent_id)
    if as_json:
        echo_json({"ok": True, "removed": agent_id})
    else:
        click.echo(f"agent {agent_id} removed")


def _status_command(name: str, doc: str, call: Callable[[Any, str], str], done: str) -> None:
    @agent_group.command(name, help=doc)
    @click.argument("agent_id")
    @json_flag
    @pass_app
    @handles_errors
    def command(app: App, agent_id: str, as_json: bool) -> None:
        previous = call(app.store, agent_id)
        _report_change(
            app, agent_id, as_json, f"agent {agent_id} {done} (was {previous})", previous=previous
        )


_status_command(
    "login", "Log an agent in: available for calls.", lambda s, a: s.login(a), "logged in"
)
_status_command(
    "logout",
    "Log an agent out (a call in progress goes on).",
    lambda s, a: s.logout(a),
    "logged out",
)
_status_command(
    "available",
    "End a break (also after no-answer): available again.",
    lambda s, a: s.set_available(a),
    "available",
)


@agent_group.command("break")
@click.argument("agent_id")
@click.option(
    "--reason", default=None, help="One of agents.break_reasons (default: the first of them)."
)
@json_flag
@pass_app
@handles_errors
def agent_break(app: App, agent_id: str, reason: str | None, as_json: bool) -> None:
    """Put an agent on break: no calls until `agent available`."""
    reasons = app.cfg.agents.break_reasons
    if reason is None:
        reason = reasons[0]
    elif reason not in reasons:
        fail(f"unknown break reason {reason!r} (agents.break_reasons: {', '.join(reasons)})")
    previous = app.store.set_break(agent_id, reason)
    _report_change(
        app,
        agent_id,
        as_json,
        f"agent {agent_id} on break: {reason} (was {previous})",
        previous=previous,
    )


@agent_group.command("list")
@json_flag
@pass_app
@handles_errors
def agent_list(app: App, as_json: bool) -> None:
    """All agents: status, state, since when, calls answered/missed, queues."""
    agents = app.store.list_agents()
    if as_json:
        echo_json(agents)
        return
    now = time.time()
    table = new_table("ID", "STATUS", "STATE", "SINCE", "ANSWERED", "MISSED", "QUEUES")
    for a in agents:
        table.add_row(
            a["id"],
            status_text(a),
            a.get("state", ""),
            ago(a.get("state_since"), now),
            str(a["answered"]),
            str(a["missed"]),
            queues_text(a["queues"]),
        )
    if not agents:
        click.echo("no agents (add one: fsacd agent add ID --contact ... --queue NAME)")
        return
    console().print(table)


#: Longest ``agent consent --by`` (a name or a ticket reference, kept in the agent's hash).
MAX_BY = 100

@agent_group.command("consent")
@click.argument("agent_id")
@click.option("--revoke", is_flag=True, help="Withdraw the agent's consent to be recorded.")
@click.option(
    "--by",
    default="cli",
    show_default=True,
    help=f"Who records this (for the log; at most {MAX_BY} characters).",
)
@json_flag
@pass_app
@handles_errors
def agent_consent(app: App, agent_id: str, revoke: bool, by: str, as_json: bool) -> None:
    """Record the agent's consent to call recording (explicit, dated, revocable)."""
    from fsacd.core import consent
    from fsacd.core.text import has_control

    if not by.strip() or len(by) > MAX_BY or has_control(by):
        fail(f"--by must be 1 to {MAX_BY} printable characters (got {len(by)})")
    _agent_or_fail(app, agent_id)
    now = time.time()
    fields = (
        consent.revoke_agent_consent(now, by) if revoke else consent.give_agent_consent(now, by)
    )
    store = app.store
    store.set_agent_fields(agent_id, **fields)
    store.event("agent-consent", agent=agent_id, state=fields["rec_consent"], by=by)
    view = consent.agent_consent_view(store.get_agent(agent_id))
    if as_json:
        echo_json({"agent": agent_id, **view})
    else:
        click.echo(f"agent {agent_id}: recording consent {view['state']}")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@agent_group.command("show")
@click.argument("agent_id")
@json_flag
@pass_app
@handles_errors
def agent_show(app: App, agent_id: str, as_json: bool) -> None:
    """Everything about one agent, with today's figures and time in each state."""
    agent = _agent_or_fail(app, agent_id)
    from fsacd.cli.monitor import since_start, stats_store

    today = stats_store(app).agent_figures([agent], since_start(app, "today"))[agent_id]
    if as_json:
        echo_json({**agent, "today": today.to_dict()})
        return
    now = time.time()
    table = Table("FIELD", "VALUE", show_header=False, box=None)
    for key in sorted(agent):
        value = agent[key]
        if key == "queues":
            text = queues_text(value)
        elif key == "talk_time":
            text = duration(value or 0)
        elif is_time_field(key) and _number(value) is not None:
            text = when(_number(value), now)
        else:
            text = human(value)
        table.add_row(key, text)
    for key, value in today.to_dict().items():
        if key == "time_in_state":
            text = " ".join(f"{k} {duration(v)}" for k, v in value.items()) or "-"
        elif isinstance(value, float):
            text = duration(value)
        else:
            text = "-" if value is None else str(value)
        table.add_row(f"today.{key}", text)
    console().print(table)


# --- queues ---------------------------------------------------------------------------------


@main.group("queue")
def queue_group() -> None:
    """Look at queues: waiting callers and members."""


def _view(app: App, name: str) -> dict[str, Any]:
    from fsacd.state.store import UnknownQueue

    try:
        return app.store.queue_view(name)
    except UnknownQueue:
        # configured, but no controller has recorded it yet and nobody uses it
        return {
            "name": name,
            "configured": False,
            "strategy": "",
            "waiting": [],
            "active": [],
            "members": [],
            "counts": {},
        }


@queue_group.command("list")
@json_flag
@pass_app
@handles_errors
def queue_list(app: App, as_json: bool) -> None:
    """Every configured queue with its counts."""
    rows = []
    for name, q in app.cfg.queues.items():
        v = _view(app, name)
        c = v.get("counts", {})
        rows.append(
            {
                "name": name,
                "strategy": q.strategy,
                "paused": v.get("paused", False),
                "priority": q.priority,
                "waiting": c.get("waiting", 0),
                "offering": c.get("offering", 0),
                "bridged": c.get("bridged", 0),
                "members": c.get("members", 0),
                "logged_in": c.get("logged_in", 0),
                "available": c.get("available", 0),
                "free": c.get("free", 0),
            }
        )
    if as_json:
        echo_json(rows)
        return
    cols = ("name", "strategy", "waiting", "offering", "bridged", "members", "available", "free")
    table = new_table(*(c.upper() for c in cols))
    for row in rows:
        table.add_row(*(str(row[c]) for c in cols))
    console().print(table)


@queue_group.command("show")
@click.argument("name")
@json_flag
@pass_app
@handles_errors
def queue_show(app: App, name: str, as_json: bool) -> None:
    """One queue: its settings, waiting callers in order, calls in progress, members."""
    q = app.cfg.queues.get(name)
    if q is None:
        fail(f"unknown queue {name!r} (configured: {', '.join(app.cfg.queues)})")
    v = _view(app, name)
    settings = {k: getattr(q, k) for k in q.__dataclass_fields__ if k != "name"}
    if as_json:
        echo_json({**v, "config": settings})
        return
    con = console()
    paused = " (paused: no offers until fsacd queue resume)" if v.get("paused") else ""
    con.print(f"queue {name}" + (f" ({q.display_name})" if q.display_name else "") + paused)
    grid = Table("SETTING", "VALUE", show_header=False, box=None, padding=(0, 2))
    for key, val in settings.items():
        if val not in (None, "") and key != "display_name":
            grid.add_row(key, human(val))
    con.print(grid)
    waiting = new_table("#", "CALL", "PRIORITY", "WAITED", "NUMBER", "NAME", title="waiting")
    for w in v["waiting"]:
        waiting.add_row(
            str(w["position"]),
            w["id"],
            str(w["priority"]),
            duration(w["waited"]),
            w.get("number") or "-",
            w.get("name") or "",
        )
    con.print(waiting if v["waiting"] else "waiting: none")
    if v["active"]:
        active = new_table("CALL", "STATE", "AGENT(S)", "SINCE", title="in progress")
        for a in v["active"]:
            who = a.get("agent") or ",".join(a.get("agents") or [])
            active.add_row(a["id"], a["state"], who, duration(a["since"]))
        con.print(active)
    members = new_table(
        "POS", "AGENT", "STATUS", "STATE", "FREE", "ANSWERED", "MISSED", title="members"
    )
    for m in v["members"]:
        members.add_row(
            str(m["position"]),
            m["id"],
            status_text(m),
            m["state"],
            "yes" if m["free"] else "no",
            str(m["answered"]),
            str(m["missed"]),
        )
    con.print(members if v["members"] else "members: none")


# --- serve ----------------------------------------------------------------------------------


@main.command("serve")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@pass_app
def serve(app: App, log_level: str) -> None:
    """Run the controller until SIGTERM/SIGINT."""
    cfg = app.cfg
    from gevent import monkey

    if not monkey.is_module_patched("socket"):  # the entry point patches; in-process callers
        monkey.patch_all()  # (tests) may not have
    from fsacd.acd import controller, logs

    logs.setup(log_level, cfg.monitoring.log_format)
    from fsacd.state.connection import RedisSetupError

    try:
        controller.run(cfg, config_path=app.path)
    except RedisSetupError as exc:
        raise click.ClickException(str(exc)) from None


@main.group("call")
def call_group() -> None:
    """Live calls."""


@call_group.command("revoke-recording")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def call_revoke_recording(app: App, call_id: str, as_json: bool) -> None:
    """Revoke the recording consent of a live call: its recording stops at once."""
    store = app.store
    call = store.get_call(call_id)
    if call is None or call.get("state") == "ended":
        fail(f"no live call {call_id!r}")
    receivers = store.control(f"revoke:{call_id}")
    if as_json:
        click.echo(json.dumps({"call": call_id, "requested": True, "controllers": receivers}))
    else:
        click.echo(f"recording consent revoked for call {call_id} ({receivers} controller(s))")


@call_group.command("dial")
@click.argument("number")
@click.option(
    "--queue",
    "queue",
    required=True,
    help="The queue whose agents and caller-ID policy make the call.",
)
@click.option("--priority", type=click.IntRange(0, 1000), default=0, show_default=True)
@click.option("--region", default=None, help="Region to read a national number in.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def call_dial(
    app: App, number: str, queue: str, priority: int, region: str | None, as_json: bool
) -> None:
    """Call a customer: the queue's next free agent is rung first, then NUMBER is dialled
    with the queue's customer caller-ID policy (a callback without a caller)."""
    import getpass
    import uuid as uuidlib

    from fsacd.core.numbers import normalise, supported_region

    cfg = app.cfg
    if queue not in cfg.queues:
        fail(f"unknown queue {queue!r} (configured: {', '.join(sorted(cfg.queues))})")
    if region is not None and not supported_region(region.upper()):
        fail(f"--region {region!r} is not a region phonenumbers supports (e.g. DE, US)")
    n = normalise(number, (region or cfg.freeswitch.default_region).upper())
    if n.e164 is None:
        fail(f"not a dialable number ({n.reason}); write it like +4922112345678")
    rid = str(uuidlib.uuid4())
    store = app.store
    payload = json.dumps(
        {"id": rid, "number": n.e164, "queue": queue, "priority": priority, "by": getpass.getuser()}
    )
    receivers = store.control(f"dial:{payload}")
    if not receivers:
        fail("no controller is running (fsacd serve) to place the call")
    if as_json:
        click.echo(json.dumps({"call": rid, "number": n.e164, "queue": queue}))
    else:
        click.echo(f"call {rid}: {n.e164} through queue {queue} (watch: fsacd queue show {queue})")


@main.command("reload")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def reload_cmd(app: App, as_json: bool) -> None:
    """Ask every running controller to re-read its config file (like SIGHUP).

    The config is checked here first: a bad file is refused and nothing is sent. Each
    controller checks the file again and keeps its old config if the new one is invalid.
    """
    cfg = app.cfg
    store = app.store
    receivers = store.control("reload")
    if as_json:
        click.echo(json.dumps({"requested": True, "controllers": receivers}))
    else:
        click.echo(
            f"reload requested: {receivers} controller(s) listening "
            f"({len(cfg.queues)} queue(s) in {app.path})"
        )


# --- contacts and screen pops (fsacd/cli/contacts.py) ----------------------------------------


main.add_command(contacts_group)
main.add_command(pop_group)


# --- numbers (caller ID; fsacd/cli/numbers.py) ------------------------------------------------


main.add_command(numbers_group)
main.add_command(simulate)  # capacity planning (fsacd/cli/simulate.py, docs/simulate.md)


# --- monitoring (fsacd/cli/monitor.py) ---------------------------------------------------------


main.add_command(stats_cmd)
main.add_command(watch_cmd)
main.add_command(web_cmd)


# --- the floor: live calls, queues paused and drained, listening in, bulk, doctor -------------

floor.register(main, call_group, queue_group)
supervise.register(main)
agents_io.register(agent_group)
doctor.register(main)


if __name__ == "__main__":  # pragma: no cover
    main()
