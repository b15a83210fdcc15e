"""``fsacd listen|whisper|barge AGENT``: the supervisor's phone joins an agent's call.

FreeSWITCH rings the supervisor (``originate`` over the inbound event socket) and, once
answered, runs ``eavesdrop <caller uuid>`` on that leg. The mode is set by the eavesdrop
variables on the supervisor's leg (FreeSWITCH's mod_dptools, switch_ivr_eavesdrop_session):
the eavesdropped channel is the caller's, so its read stream goes to the agent and its write
stream to the caller:

- listen: hear both, nobody hears the supervisor;
- whisper: ``eavesdrop_whisper_aleg=true``: the agent hears the supervisor, the caller not;
- barge: ``eavesdrop_whisper_aleg=true`` and ``eavesdrop_whisper_bleg=true``: both do.

``eavesdrop_enable_dtmf=true``: on the phone, 1 = whisper to the agent, 2 = talk to the
caller only, 3 = barge, 0 = listen again, * = leave. The command returns once eavesdrop
runs; hanging up the phone ends it.
"""

from __future__ import annotations

import getpass
import time
import uuid as uuidlib
from typing import Any

import click

from fsacd.cli import switch
from fsacd.cli.common import App, echo_json, fail, handles_errors, json_flag, pass_app
from fsacd.core import dialstring

#: The eavesdrop variables of each mode (both streams are always heard).
MODES: dict[str, dict[str, str]] = {
    "listen": {"eavesdrop_whisper_aleg": "false", "eavesdrop_whisper_bleg": "false"},
    "whisper": {"eavesdrop_whisper_aleg": "true", "eavesdrop_whisper_bleg": "false"},
    "barge": {"eavesdrop_whisper_aleg": "true", "eavesdrop_whisper_bleg": "true"},
}
#: How long eavesdrop may take to start on the answered leg.
START_TIMEOUT = 5.0


def originate_command(
    mode: str, contact: str, call_id: str, leg_uuid: str, agent: str, ring_timeout: int
) -> str:
    """The ``originate`` that rings ``contact`` and runs ``eavesdrop call_id`` on it.

    ValueError for an unusable contact or call id (nothing caller-controlled is in here:
    the contact is an operator's, checked like an agent's; the ids are checked)."""
    problem = dialstring.contact_problem(contact)
    if problem:
        raise ValueError(f"--from {problem}")
    for value in (call_id, leg_uuid):
        if not value or not all(c.isalnum() or c in "-_." for c in value) or len(value) > 64:
            raise ValueError(f"not a channel uuid: {value!r}")
    variables = {
        "origination_uuid": leg_uuid,
        "originate_timeout": str(int(ring_timeout)),
        "origination_caller_id_name": f"fsacd-{mode}-{agent}",
        "origination_caller_id_number": "fsacd",
        "eavesdrop_enable_dtmf": "true",
        "eavesdrop_bridge_aleg": "true",
        "eavesdrop_bridge_bleg": "true",
        **MODES[mode],
        "fsacd_supervise": mode,
        "fsacd_call": call_id,
        "fsacd_agent": agent,
    }
    return f"originate {dialstring.var_block(variables)}{contact} &eavesdrop({call_id})"


def _target(app: App, agent_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    agent = app.store.get_agent(agent_id)
    if agent is None:
        fail(f"unknown agent {agent_id!r}")
    call_id = agent.get("call") or ""
    if agent.get("state") != "in-call" or not call_id:
        fail(f"agent {agent_id!r} is not in a call (state {agent.get('state') or 'unknown'})")
    call = app.store.get_call(call_id)
    if call is None or call.get("state") != "bridged":
        fail(f"call {call_id!r} of agent {agent_id!r} is not bridged now")
    return agent, call


def _wait_started(client: Any, leg_uuid: str, timeout: float) -> str | None:
    """Wait for eavesdrop to start on the leg: None once it runs, else why not."""
    end = time.time() + timeout
    while time.time() < end:
        ev = client.next_event(max(0.05, end - time.time()))
        if ev is None:
            continue
        if ev.name in ("SOCKET_CLOSED", "DISCONNECT"):
            return "the event socket closed"
        if ev.get("Unique-ID") != leg_uuid:
            continue
        if ev.name == "CHANNEL_EXECUTE" and ev.get("Application") == "eavesdrop":
            return None
        if ev.name == "CHANNEL_HANGUP":
            return f"the supervisor's phone hung up ({ev.get('Hangup-Cause') or 'no cause'})"
    return f"eavesdrop did not start within {timeout:.0f}s"


def run_supervise(app: App, mode: str, agent_id: str, contact: str | None) -> dict[str, Any]:
    """Ring the supervisor and join the agent's call in ``mode``; returns what was done."""
    cfg = app.cfg
    contact = contact or cfg.supervisor.contact
    if not contact:
        fail("no supervisor phone: give --from CONTACT or set [supervisor] contact")
    problem = dialstring.contact_problem(contact)
    if problem:
        fail(f"--from {problem}")
    _agent, call = _target(app, agent_id)
    call_id = call["id"]
    leg_uuid = str(uuidlib.uuid4())
    ring = cfg.supervisor.ring_timeout
    command = originate_command(mode, contact, call_id, leg_uuid, agent_id, ring)
    from fsacd.esl.session import ESLError

    client = switch.connect(app, command_timeout=ring + 15)
    try:
        try:
            client.subscribe(["CHANNEL_EXECUTE", "CHANNEL_HANGUP"])
            reply = (client.bgapi(command, timeout=ring + 15) or "").strip()
        except ESLError as exc:
            # an originate still under way must not join the call later
            try:
                client.api(f"uuid_kill {leg_uuid}")
            except ESLError:
                pass
            fail(f"FreeSWITCH: originate: {exc}")
        if not reply.startswith("+OK"):
            fail(f"the supervisor's phone {contact!r} was not connected: {reply or 'no reply'}")
        why = _wait_started(client, leg_uuid, START_TIMEOUT)
        if why is not None:
            switch.api(client, f"uuid_kill {leg_uuid}")
            fail(f"{mode}: {why}")
        if switch.api(client, f"uuid_exists {call_id}") != "true":
            switch.api(client, f"uuid_kill {leg_uuid}")
            fail(f"call {call_id!r} of agent {agent_id!r} ended before the supervisor joined")
    finally:
        client.close()
    app.store.event(
        "supervisor-joined",
        call=call_id,
        agent=agent_id,
        mode=mode,
        leg=leg_uuid,
        by=getpass.getuser(),
    )
    return {
        "ok": True,
        "mode": mode,
        "agent": agent_id,
        "call": call_id,
        "leg": leg_uuid,
        "from": contact,
    }


def _command(mode: str, doc: str) -> click.Command:
    @click.command(mode, help=doc)
    @click.argument("agent_id")
    @click.option(
        "--from",
        "contact",
        default=None,
        metavar="CONTACT",
        help="Dial string of the supervisor's phone (default: [supervisor] contact).",
    )
    @json_flag
    @pass_app
    @handles_errors
    def command(app: App, agent_id: str, contact: str | None, as_json: bool) -> None:
        result = run_supervise(app, mode, agent_id, contact)
        if as_json:
            echo_json(result)
        else:
            click.echo(
                f"{mode}: {result['from']} is on agent {agent_id}'s call {result['call']}"
                " (keys: 1 whisper to the agent, 2 talk to the caller, 3 barge, 0 listen,"
                " * leave)"
            )

    return command


listen_cmd = _command("listen", "Ring your phone and listen to AGENT's call (nobody hears you).")
whisper_cmd = _command(
    "whisper", "Ring your phone and join AGENT's call heard by the agent only (coaching)."
)
barge_cmd = _command("barge", "Ring your phone and join AGENT's call heard by both sides.")


def register(main: click.Group) -> None:
    """Add listen, whisper and barge to the CLI (fsacd/cli/main.py)."""
    for cmd in (listen_cmd, whisper_cmd, barge_cmd):
        main.add_command(cmd)
