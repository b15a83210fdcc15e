"""The floor's live calls: ``fsacd calls``, ``fsacd call show|hangup|transfer|move|priority``,
``fsacd queue pause|resume|drain`` (docs/cli.md).

Registered on the main group and its ``call``/``queue`` groups by fsacd/cli/main.py.
"""

from __future__ import annotations

import getpass
import re
import time
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from fsacd.cli import switch
from fsacd.cli.common import (
    App,
    console,
    duration,
    echo_json,
    fail,
    handles_errors,
    json_flag,
    new_table,
    pass_app,
    when,
)
from fsacd.core import dialstring

#: An extension name ``call transfer`` may send a call to (``uuid_transfer UUID EXT XML CTX``).
_EXTENSION = re.compile(r"[A-Za-z0-9_.+*#@-]{1,64}")
_CONTEXT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_UUID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

yes_flag = click.option("--yes", "-y", is_flag=True, help="Do it without asking.")


def caller_text(call: dict[str, Any]) -> str:
    """Who is calling, as a supervisor may see it: ``anonymous`` for a hidden number."""
    if call.get("number_status") == "hidden":
        return "anonymous"
    return call.get("number") or call.get("number_raw") or "unknown"


def call_row(call: dict[str, Any], now: float) -> dict[str, Any]:
    """One live call for ``fsacd calls`` (the documented JSON fields)."""
    entered = call.get("entered_at") or now
    answered = call.get("answered_at")
    state = call.get("state", "")
    if state == "bridged" and answered:
        waited, talked = answered - entered, now - answered
    else:
        waited, talked = now - entered, 0.0
    agent = call.get("agent") or ""
    if not agent and state == "offering":
        agent = ",".join(call.get("agents") or [])
    return {
        "id": call["id"],
        "caller": caller_text(call),
        "name": "" if call.get("number_status") == "hidden" else call.get("name", ""),
        "queue": call.get("queue", ""),
        "state": state,
        "agent": agent,
        "priority": call.get("priority", 0),
        "waited": round(max(0.0, waited), 1),
        "talked": round(max(0.0, talked), 1),
        "entered_at": call.get("entered_at"),
        "answered_at": answered,
        "callback": call.get("callback") == "1",
        "owner": call.get("owner", ""),
    }


def _live_call(app: App, call_id: str) -> dict[str, Any]:
    if not _UUID.fullmatch(call_id):
        fail(f"not a call id: {call_id!r}")
    call = app.store.get_call(call_id)
    if call is None or call.get("state") == "ended":
        fail(f"no live call {call_id!r} (see: fsacd calls)")
    return call


def _known_queue(app: App, name: str) -> None:
    if name not in app.cfg.queues:
        fail(f"unknown queue {name!r} (configured: {', '.join(app.cfg.queues)})")
    app.store.sync_queues(app.cfg.queues)


# --- fsacd calls ----------------------------------------------------------------------------


@click.command("calls")
@click.option("--queue", default=None, help="Only the calls of this queue.")
@json_flag
@pass_app
@handles_errors
def calls_cmd(app: App, queue: str | None, as_json: bool) -> None:
    """Every live call, waiting ones included: caller, queue, state, agent, waited, talked."""
    if queue is not None and queue not in app.cfg.queues:
        fail(f"unknown queue {queue!r} (configured: {', '.join(app.cfg.queues)})")
    now = time.time()
    rows = [call_row(c, now) for c in app.store.list_calls(queue)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no live calls")
        return
    table = new_table("CALL", "CALLER", "QUEUE", "STATE", "AGENT", "WAITED", "TALKED")
    for r in rows:
        table.add_row(
            r["id"],
            Text(r["caller"]),
            r["queue"],
            r["state"] + (" (callback)" if r["callback"] else ""),
            r["agent"] or "-",
            duration(r["waited"]),
            duration(r["talked"]) if r["state"] == "bridged" else "-",
        )
    console().print(table)


# --- fsacd call show|hangup|transfer|move|priority -------------------------------------------


@click.command("show")
@click.argument("call_id")
@json_flag
@pass_app
@handles_errors
def call_show(app: App, call_id: str, as_json: bool) -> None:
    """One call (live or ended within a day) and its event history."""
    if not _UUID.fullmatch(call_id):
        fail(f"not a call id: {call_id!r}")
    call = app.store.get_call(call_id)
    if call is None:
        fail(f"unknown call {call_id!r} (ended calls are kept for a day)")
    events = app.store.call_events(call_id)
    now = time.time()
    row = call_row(call, now) if call.get("state") != "ended" else None
    if as_json:
        public = {k: v for k, v in call.items() if k != "number_hash"}
        echo_json({"call": {**public, "caller": caller_text(call)}, "live": row, "events": events})
        return
    con = console()
    grid = Table("FIELD", "VALUE", show_header=False, box=None)
    grid.add_row("call", call_id)
    grid.add_row("caller", Text(caller_text(call)))
    for key in ("name", "queue", "priority", "state", "agent", "outcome", "owner"):
        if call.get(key) not in (None, ""):
            grid.add_row(key, Text(str(call[key])))
    for key in ("entered_at", "answered_at", "ended_at"):
        if call.get(key):
            grid.add_row(key, when(call[key], now))
    if row:
        grid.add_row("waited", duration(row["waited"]))
        if row["state"] == "bridged":
            grid.add_row("talked", duration(row["talked"]))
    con.print(grid)
    table = new_table("TIME", "EVENT", "DETAILS", title="events")
    for ev in events:
        ts = float(ev.get("ts") or 0)
        details = " ".join(
            f"{k}={v}" for k, v in ev.items() if k not in ("id", "type", "ts", "call")
        )
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(ts)), ev.get("type", ""), Text(details)
        )
    con.print(table if events else "events: none in the stream")


@click.command("hangup")
@click.argument("call_id")
@yes_flag
@json_flag
@pass_app
@handles_errors
def call_hangup(app: App, call_id: str, yes: bool, as_json: bool) -> None:
    """End a live call (the caller's channel) through FreeSWITCH."""
    call = _live_call(app, call_id)
    if not yes:
        click.confirm(
            f"hang up call {call_id} ({caller_text(call)}, {call.get('state')})?", abort=True
        )
    client = switch.connect(app)
    try:
        reply = switch.api(client, f"uuid_kill {call_id} NORMAL_CLEARING")
    finally:
        client.close()
    if not reply.startswith("+OK"):
        fail(f"FreeSWITCH did not hang up call {call_id!r}: {reply or 'no reply'}")
    app.store.event("call-hangup-requested", call=call_id, by=getpass.getuser())
    if as_json:
        echo_json({"ok": True, "call": call_id, "hung_up": True})
    else:
        click.echo(f"call {call_id} hung up")


@click.command("transfer")
@click.argument("call_id")
@click.argument("dest")
@click.option(
    "--context", default="default", show_default=True, help="Dialplan context of an extension DEST."
)
@json_flag
@pass_app
@handles_errors
def call_transfer(app: App, call_id: str, dest: str, context: str, as_json: bool) -> None:
    """Send a live call elsewhere: DEST is an extension (run in the XML dialplan's
    --context) or a dial string such as user/1002@pbx.example (bridged to)."""
    _live_call(app, call_id)
    if "/" in dest or "${" in dest:
        problem = dialstring.contact_problem(dest)
        if problem:
            fail(f"DEST {problem}")
        command = f"uuid_transfer {call_id} 'bridge:{dest}' inline"
    else:
        if not _EXTENSION.fullmatch(dest):
            fail(
                f"DEST {dest!r}: an extension is 1-64 of A-Z a-z 0-9 _ . + * # @ -"
                " (or give a dial string like user/1002@pbx.example)"
            )
        if not _CONTEXT.fullmatch(context):
            fail(f"--context {context!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        command = f"uuid_transfer {call_id} {dest} XML {context}"
    client = switch.connect(app)
    try:
        reply = switch.api(client, command)
    finally:
        client.close()
    if not reply.startswith("+OK"):
        fail(f"FreeSWITCH did not transfer call {call_id!r}: {reply or 'no reply'}")
    app.store.event("call-transferred", call=call_id, to=dest, by=getpass.getuser())
    if as_json:
        echo_json({"ok": True, "call": call_id, "to": dest})
    else:
        click.echo(f"call {call_id} transferred to {dest}")


_NOT_WAITING = {
    "unknown": "unknown call",
    "not-queued": "is a callback waiting for its next try, not in a queue",
    "already-there": "is already in that queue",
}


def _why(call_id: str, why: str) -> str:
    text = _NOT_WAITING.get(why, f"is {why}, not waiting")
    return f"call {call_id} {text}: only a waiting call can be moved or re-prioritised"


@click.command("move")
@click.argument("call_id")
@click.argument("queue")
@json_flag
@pass_app
@handles_errors
def call_move(app: App, call_id: str, queue: str, as_json: bool) -> None:
    """Move a waiting call to another queue (it keeps its priority and arrival)."""
    _live_call(app, call_id)
    _known_queue(app, queue)
    ok, info = app.store.supervisor_move(call_id, queue, by=getpass.getuser())
    if not ok:
        fail(_why(call_id, info))
    pos = app.store.position(call_id)
    if as_json:
        echo_json({"ok": True, "call": call_id, "from": info, "queue": queue, "position": pos})
    else:
        click.echo(f"call {call_id} moved from {info} to {queue} (position {pos})")


@click.command("priority")
@click.argument("call_id")
@click.argument("priority", type=int)
@json_flag
@pass_app
@handles_errors
def call_priority(app: App, call_id: str, priority: int, as_json: bool) -> None:
    """Give a waiting call another priority (higher is served first)."""
    from fsacd.core.routing import PRIORITY_MAX

    if not 0 <= priority <= PRIORITY_MAX:
        fail(f"PRIORITY must be 0 to {PRIORITY_MAX}, got {priority}")
    _live_call(app, call_id)
    ok, info = app.store.supervisor_priority(call_id, priority, by=getpass.getuser())
    if not ok:
        fail(_why(call_id, info))
    pos = app.store.position(call_id)
    if as_json:
        echo_json(
            {
                "ok": True,
                "call": call_id,
                "priority": priority,
                "previous": int(info),
                "position": pos,
            }
        )
    else:
        click.echo(f"call {call_id}: priority {priority} (was {info}), position {pos}")


# --- fsacd queue pause|resume|drain ------------------------------------------------------------


def _pause_command(paused: bool) -> click.Command:
    verb = "pause" if paused else "resume"

    @click.command(verb)
    @click.argument("name")
    @json_flag
    @pass_app
    @handles_errors
    def command(app: App, name: str, as_json: bool) -> None:
        _known_queue(app, name)
        was = app.store.set_queue_paused(name, paused, by=getpass.getuser())
        if as_json:
            echo_json({"ok": True, "queue": name, "paused": paused, "was_paused": was})
            return
        if paused:
            state = "already paused" if was else "paused"
            click.echo(
                f"queue {name} {state}: no calls are offered until fsacd queue resume {name}"
            )
        else:
            state = "resumed" if was else "was not paused"
            click.echo(f"queue {name} {state}: calls are offered again")

    command.help = (
        "Pause a queue: callers keep waiting, no calls are offered."
        if paused
        else "Resume a paused queue: offering starts again at once."
    )
    return command


queue_pause = _pause_command(True)
queue_resume = _pause_command(False)


@click.command("drain")
@click.argument("name")
@click.option("--to", "to_queue", required=True, help="The queue that takes the waiting calls.")
@yes_flag
@json_flag
@pass_app
@handles_errors
def queue_drain(app: App, name: str, to_queue: str, yes: bool, as_json: bool) -> None:
    """Move every waiting call of a queue to another (in order, keeping their places)."""
    _known_queue(app, name)
    _known_queue(app, to_queue)
    if name == to_queue:
        fail("--to must be another queue")
    store = app.store
    ids = store.waiting_ids(name)
    if ids and not yes:
        click.confirm(f"move {len(ids)} waiting call(s) from {name} to {to_queue}?", abort=True)
    moved, skipped = [], []
    by = getpass.getuser()
    for call_id in ids:
        ok, _ = store.supervisor_move(call_id, to_queue, by=by)
        (moved if ok else skipped).append(call_id)
    if as_json:
        echo_json({"ok": True, "queue": name, "to": to_queue, "moved": moved, "skipped": skipped})
        return
    tail = f"; {len(skipped)} were no longer waiting" if skipped else ""
    click.echo(f"moved {len(moved)} waiting call(s) from {name} to {to_queue}{tail}")


def register(main: click.Group, call_group: click.Group, queue_group: click.Group) -> None:
    """Add these commands to the CLI (fsacd/cli/main.py)."""
    main.add_command(calls_cmd)
    for cmd in (call_show, call_hangup, call_transfer, call_move, call_priority):
        call_group.add_command(cmd)
    for cmd in (queue_pause, queue_resume, queue_drain):
        queue_group.add_command(cmd)
