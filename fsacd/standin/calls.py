"""Callers: ``FakeFreeSwitch.place_call`` creates one and returns a :class:`Call` handle.

The caller channel looks like the ``loopback/5000-b`` channel of the recorded transcripts
(an inbound channel whose dialplan runs ``socket <controller> async full``); after the
``socket`` application the "after socket" dialplan runs (a list of ``(app, arg)``, or a
callable taking the Call), and a channel that reaches the end of its dialplan is hung up
with NORMAL_CLEARING, as FreeSWITCH does.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from typing import Protocol

import gevent

from .apps import execute_application, inline_apps
from .channel import CallerProfile, Channel, Switch
from .phones import Leg

AfterSocket = list[tuple[str, str | None]] | Callable[["Call"], None] | None


class CallSwitch(Switch, Protocol):
    """The switch (a FakeFreeSwitch) as callers see it: its calls, the controller to dial."""

    calls: list[Call]
    socket_target: tuple[str, int]
    socket_arg: str
    dialplan_after_socket: AfterSocket


class Call:
    """A caller: its channel plus what the stand-in recorded about it."""

    def __init__(self, fs: CallSwitch, channel: Channel) -> None:
        self.fs = fs
        self.channel = channel
        self.apps: list[tuple[str, str | None]] = []
        self.events_sent: list[str] = []
        self.legs: list[Leg] = []
        self.bridged_leg: Leg | None = None
        self.recordings: list[tuple[str, float, float]] = []
        self.created = time.time()
        self.destination = channel.profile.destination_number

    @property
    def uuid(self) -> str:
        return self.channel.uuid

    @property
    def variables(self) -> dict[str, str]:
        return self.channel.vars.as_dict()

    @property
    def heard(self) -> list[tuple[str, object]]:
        """What the caller heard, in order: (kind, time) or ("bridged", leg uuid).

        Kinds: moh, tone, file, silence, ringback, bridged, dtmf (from the agent).
        """
        return list(self.channel.heard)

    @property
    def answered(self) -> bool:
        return self.channel.answered

    @property
    def hangup_cause(self) -> str | None:
        return self.channel.hangup_cause

    @property
    def log(self) -> list[tuple[float, str, str]]:
        return list(self.channel.log)

    @property
    def is_up(self) -> bool:
        return self.channel.up()

    def wait_hangup(self, timeout: float | None = None) -> str:
        """Block until the caller is hung up; its hangup cause. TimeoutError otherwise."""
        if not self.channel.hungup.wait(timeout):
            raise TimeoutError(f"call {self.uuid} still up after {timeout}s")
        return self.channel.hangup_cause or ""

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> object:
        """Poll ``predicate`` until it is truthy; TimeoutError after ``timeout`` seconds."""
        end = time.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.time() >= end:
                raise TimeoutError(f"condition not met within {timeout}s")
            gevent.sleep(0.01)

    def wait_bridged(self, timeout: float = 5.0) -> Leg:
        return self.wait_for(lambda: self.bridged_leg, timeout)  # type: ignore[return-value]

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """The caller hangs up."""
        if self.channel.up():
            self.channel.hangup(cause)

    def send_dtmf(self, digits: str, duration: int = 2000) -> None:
        """The caller presses keys (read by whatever application runs next)."""
        if self.channel.up():
            self.channel.queue_dtmf(digits, duration, "RTP")

    def execute(self, app: str, arg: str | None = None) -> bool:
        """Run an application now; only from the call's own session (after-socket callbacks)."""
        return execute_application(self.channel, app, arg)

    def __repr__(self) -> str:
        return f"<Call {self.uuid} {self.channel.name} {self.channel.running_state}>"


def place_call(
    fs: CallSwitch,
    destination: str = "5000",
    caller_number: str = "+4922129191999",
    caller_name: str = "Erika Muster",
    variables: dict[str, str] | Iterable[tuple[str, str]] | None = None,
    hangup_after: float | None = None,
    dtmf: Iterable[tuple[float, str]] = (),
    dialplan_after_socket: AfterSocket = None,
    *,
    uuid: str | None = None,
    socket_target: tuple[str, int] | None = None,
    socket_arg: str | None = None,
    hangup_cause: str = "NORMAL_CLEARING",
    channel_name: str | None = None,
    originate_variables: dict[str, str] | Iterable[tuple[str, str]] | None = None,
) -> Call:
    """Create a caller whose dialplan connects it to the controller (see FakeFreeSwitch).

    ``originate_variables`` are those of the ``{...}`` block that placed a loopback caller
    (FreeSWITCH sets them on the B leg right after ``origination_caller_id_*``);
    ``variables`` are set afterwards, as the dialplan would."""
    name = channel_name or f"loopback/{destination}-b"
    loopback = name.startswith("loopback/")
    profile = CallerProfile(
        direction="inbound",
        logical_direction="inbound",
        caller_id_name=caller_name,
        caller_id_number=caller_number,
        orig_caller_id_name=caller_name,
        orig_caller_id_number=caller_number,
        callee_id_name="Outbound Call",
        callee_id_number="default",
        ani=caller_number,
        destination_number=destination,
        source="mod_loopback" if loopback else "mod_sofia",
        context="default",
        profile_index="1",
    )
    ch = Channel(fs, name=name, direction="inbound", profile=profile, uuid=uuid, role="caller")
    call = Call(fs, ch)
    ch.call = call
    fs.add_channel(ch)
    fs.calls.append(call)
    ch.set_var("direction", "inbound")
    ch.set_var("uuid", ch.uuid)
    ch.set_var("session_id", str(ch.session_id))
    ch.set_var("channel_name", name)
    for k, v in (("read_codec", "L16"), ("read_rate", "8000")):
        ch.set_var(k, v)
    for k, v in (("write_codec", "L16"), ("write_rate", "8000")):
        ch.set_var(k, v)
    ch.set_var("origination_caller_id_number", caller_number)
    ch.set_var("origination_caller_id_name", caller_name)
    originated = (
        originate_variables.items()
        if isinstance(originate_variables, dict)
        else (originate_variables or [])
    )
    for k, v in originated:
        ch.set_var(k, v)
    if loopback:
        ch.set_var("other_loopback_leg_uuid", str(uuidlib.uuid4()))
        ch.set_var("loopback_leg", "B")
    items = variables.items() if isinstance(variables, dict) else (variables or [])
    for k, v in items:
        ch.set_var(k, v)
    host, port = socket_target or fs.socket_target
    arg = socket_arg if socket_arg is not None else fs.socket_arg
    ch.extension = [("socket", f"{host}:{port} {arg}".rstrip())]
    after = dialplan_after_socket if dialplan_after_socket is not None else fs.dialplan_after_socket
    if callable(after):
        ch.extension.append((after, None))  # type: ignore[arg-type]
    elif after:
        ch.extension.extend(after)
    ch.start(caller_session)
    if hangup_after is not None:

        def later_hangup() -> None:
            gevent.sleep(hangup_after)
            call.hangup(hangup_cause)

        fs.spawn(later_hangup)
    for delay, digits in dtmf:

        def later_dtmf(delay: float = delay, digits: str = digits) -> None:
            gevent.sleep(delay)
            call.send_dtmf(digits)

        fs.spawn(later_dtmf)
    return call


def caller_session(ch: Channel) -> None:
    """The inbound channel's session: routing, then its extension (socket, after socket)."""
    ch.running_state = "CS_INIT"
    ch.state = "CS_ROUTING"
    ch.callstate = "RINGING"
    ch.fire("CHANNEL_CREATE")
    ch.set_running_state("CS_ROUTING")
    ch.state = "CS_EXECUTE"
    ch.set_running_state("CS_EXECUTE")
    ch.set_var("call_uuid", ch.uuid)
    run_extension(ch, list(ch.extension))


def run_extension(ch: Channel, apps: list) -> None:
    """switch_core_standard_on_execute, with transfers re-routing the channel."""
    i = 0
    while True:
        if ch.pending_extension is not None and ch.up():
            exten = ch.pending_extension
            ch.pending_extension = None
            dialplan, ch.pending_dialplan = ch.pending_dialplan, None
            ch.flags.discard("TRANSFER")
            routed = inline_apps(exten) if dialplan == "inline" else ch.fs.route(ch, exten)
            if routed is None:
                ch.hangup("NO_ROUTE_DESTINATION")
                return
            apps, i = list(routed), 0
            ch.state = "CS_EXECUTE"
        if ch.state != "CS_EXECUTE" or i >= len(apps):
            break
        app, arg = apps[i]
        i += 1
        if callable(app):
            if ch.call is not None:
                app(ch.call)
            continue
        if not execute_application(ch, app, arg):
            return
    if ch.ready() and ch.state == "CS_EXECUTE" and ch.pending_extension is None:
        ch.note("last_instruction")
        ch.hangup("NORMAL_CLEARING")
