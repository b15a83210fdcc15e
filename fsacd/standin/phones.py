"""Agent phones: how a dialled endpoint behaves, and the legs (channels) calls to it create.

``fs.phones.register("user/1001@pbx.example", PhoneBehaviour.answers(after=0.5, talk=2.0))``.
Endpoints are matched exactly (case-insensitive), then as ``fnmatch`` patterns in the order
registered, else ``fs.phones.default``. ``loopback/<ext>/<context>`` endpoints create the
A/B channel pair FreeSWITCH's loopback endpoint creates (the B leg runs the "dialplan" of the
behaviour: ring_ready, answer, sleep, hangup ...); other endpoints create one outbound channel
that the phone answers or rejects directly.
"""

from __future__ import annotations

import fnmatch
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .apps import exec_app, execute_application, media_wait
from .causes import str2cause
from .channel import CallerProfile, Channel, Switch, Times
from .fsstrings import is_true


@dataclass(frozen=True)
class PhoneBehaviour:
    """What a phone does when called.

    ``action``: answer, ring (never answers), busy, reject, early (early media, no answer),
    fail (hang up with ``cause``), answer_hangup, unregistered (no channel: the endpoint
    reports ``cause`` at once). ``after``: seconds before acting (the phone rings meanwhile);
    ``talk``: seconds after answering until the agent hangs up (None: until the caller does);
    ``give_up``: seconds of early media before hanging up with ``cause``.
    """

    action: str
    after: float = 0.0
    talk: float | None = None
    give_up: float | None = None
    cause: str = "NORMAL_CLEARING"
    ring: bool | None = None

    @classmethod
    def answers(cls, after: float = 0.0, talk: float | None = None) -> PhoneBehaviour:
        return cls("answer", after=after, talk=talk)

    @classmethod
    def never_answers(cls) -> PhoneBehaviour:
        return cls("ring", ring=True)

    rings = never_answers

    @classmethod
    def busy(cls, after: float = 0.0) -> PhoneBehaviour:
        return cls("fail", after=after, cause="USER_BUSY")

    @classmethod
    def rejects(cls, after: float = 0.0) -> PhoneBehaviour:
        return cls("fail", after=after, cause="CALL_REJECTED")

    @classmethod
    def early_media(
        cls, after: float = 0.0, give_up: float | None = None, cause: str = "NO_ANSWER"
    ) -> PhoneBehaviour:
        return cls("early", after=after, give_up=give_up, cause=cause)

    @classmethod
    def unregistered(cls, cause: str = "USER_NOT_REGISTERED") -> PhoneBehaviour:
        return cls("unregistered", cause=cause)

    @classmethod
    def answers_then_hangs_up(cls, after: float = 0.0) -> PhoneBehaviour:
        return cls("answer", after=after, talk=0.0)

    @classmethod
    def fails(cls, cause: str, after: float = 0.0) -> PhoneBehaviour:
        return cls("fail", after=after, cause=cause)

    @classmethod
    def parse(cls, text: str) -> PhoneBehaviour:
        """CLI syntax: ``answers[:after[:talk]]``, ``rings``, ``busy``, ``rejects``,
        ``early[:give_up]``, ``unregistered``, ``fails:CAUSE``."""
        name, *args = text.split(":")
        nums = [float(a) for a in args if a.replace(".", "", 1).isdigit()]
        if name == "answers":
            return cls.answers(nums[0] if nums else 0.0, nums[1] if len(nums) > 1 else None)
        if name in ("rings", "never_answers", "noanswer"):
            return cls.never_answers()
        if name == "busy":
            return cls.busy()
        if name in ("rejects", "reject"):
            return cls.rejects()
        if name == "early":
            return cls.early_media(give_up=nums[0] if nums else None)
        if name == "unregistered":
            return cls.unregistered()
        if name == "fails" and args:
            return cls.fails(str2cause(args[0]))
        raise ValueError(f"unknown phone behaviour {text!r}")


class PhoneRegistry:
    """Endpoint → behaviour."""

    def __init__(self, default: PhoneBehaviour) -> None:
        self.default = default
        self._exact: dict[str, PhoneBehaviour] = {}
        self._patterns: list[tuple[str, PhoneBehaviour]] = []

    def register(self, endpoint: str, behaviour: PhoneBehaviour) -> None:
        if any(c in endpoint for c in "*?["):
            self._patterns = [(p, b) for p, b in self._patterns if p != endpoint.lower()]
            self._patterns.append((endpoint.lower(), behaviour))
        else:
            self._exact[endpoint.lower()] = behaviour

    def unregister(self, endpoint: str) -> None:
        self._exact.pop(endpoint.lower(), None)
        self._patterns = [(p, b) for p, b in self._patterns if p != endpoint.lower()]

    def behaviour_for(self, endpoint: str) -> PhoneBehaviour:
        key = endpoint.lower()
        candidates = [key]
        if key.startswith("loopback/") and key.count("/") >= 2:
            candidates.append(key.rsplit("/", 1)[0])
        for c in candidates:
            if c in self._exact:
                return self._exact[c]
        for pattern, behaviour in self._patterns:
            if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                return behaviour
        return self.default


class DialSwitch(Switch, Protocol):
    """The switch (a FakeFreeSwitch) as dialling sees it: the phones, the legs it keeps."""

    phones: PhoneRegistry
    legs: list[Leg]


class CallRecord(Protocol):
    """The caller's record (calls.Call) that lists the legs dialled for it."""

    legs: list[Leg]


@dataclass
class Display:
    """What the called phone is told about the caller (and what a SIP INVITE would carry)."""

    name: str
    number: str
    hide_name: bool
    hide_number: bool
    screen: bool
    cid_type: str | None
    sip_headers: dict[str, str] = field(default_factory=dict)


class Leg:
    """One dialled endpoint: its A channel (and loopback B channel), behaviour and log."""

    def __init__(
        self,
        fs: DialSwitch,
        endpoint: str,
        behaviour: PhoneBehaviour,
        call: CallRecord | None,
    ) -> None:
        self.fs = fs
        self.endpoint = endpoint
        self.behaviour = behaviour
        self.call = call
        self.channel: Channel | None = None
        self.remote: Channel | None = None
        self.failed_cause: str | None = None
        self.created = time.time()
        self.log: list[tuple[float, str, str]] = []
        self.bridged_to: str | None = None

    # --- inspection -----------------------------------------------------------------------

    @property
    def uuid(self) -> str | None:
        return self.channel.uuid if self.channel else None

    @property
    def variables(self) -> dict[str, str]:
        return self.channel.vars.as_dict() if self.channel else {}

    @property
    def answered(self) -> bool:
        return bool(self.channel and self.channel.answered)

    @property
    def hangup_cause(self) -> str | None:
        return self.failed_cause or (self.channel.hangup_cause if self.channel else None)

    @property
    def state(self) -> str:
        ch = self.channel
        if ch is None:
            return "failed"
        if ch.down():
            return "hangup"
        if ch.answered:
            return "answered"
        if ch.early:
            return "early"
        if "RING_READY" in ch.flags:
            return "ringing"
        return "calling"

    @property
    def display(self) -> Display:
        """Caller ID as the agent's phone gets it (see esl-transcripts/sip-caller-id-headers.md)."""
        ch = self.channel
        if ch is None:
            return Display("", "", False, False, True, None)
        p = ch.profile
        cid_type = ch.get_var("sip_cid_type")
        headers: dict[str, str] = {}
        host = self.fs.ipv4
        name_part = f'"{p.caller_id_name}" ' if p.caller_id_name else ""
        headers["From"] = f"{name_part}<sip:{p.caller_id_number}@{host}>"
        if cid_type == "pid":
            headers["Privacy"] = "id" if (p.hide_number or p.hide_name) else "none"
            identity = "P-Asserted-Identity" if p.screen else "P-Preferred-Identity"
            headers[identity] = f"{name_part}<sip:{p.caller_id_number}@{host}>"
        for k, v in ch.vars.as_dict().items():
            if k.lower().startswith("sip_h_"):
                headers[k[6:]] = v
        return Display(
            p.caller_id_name, p.caller_id_number, p.hide_name, p.hide_number, p.screen,
            cid_type, headers,
        )  # fmt: skip

    def note(self, what: str, detail: str = "") -> None:
        self.log.append((time.time(), what, detail))

    # --- the agent acting -------------------------------------------------------------------

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """The agent hangs up (or the phone gives up)."""
        target = self.remote if self.remote is not None else self.channel
        if target is not None and target.up():
            target.hangup(cause)

    def answer(self) -> None:
        """The agent picks up now."""
        if self.channel is not None and self.channel.up():
            if self.remote is not None:
                self.channel.mark_answered()
                self.remote.answer()
            else:
                self.channel.mark_answered()
                self.channel.set_var("endpoint_disposition", "ANSWER")

    def send_dtmf(self, digits: str) -> None:
        """The agent presses keys; a bridge carries them to the caller."""
        if self.channel is not None and self.channel.up():
            self.channel.queue_dtmf(digits)
            self.note("dtmf", digits)

    def wait_hangup(self, timeout: float | None = None) -> str:
        if self.channel is None:
            return self.failed_cause or ""
        if not self.channel.hungup.wait(timeout):
            raise TimeoutError(f"leg {self.endpoint} still up after {timeout}s")
        return self.channel.hangup_cause or ""

    def __repr__(self) -> str:
        return f"<Leg {self.endpoint} {self.uuid} {self.state}>"


# --- leg creation ---------------------------------------------------------------------------


def _names(endpoint: str) -> tuple[str, str, str, str, str]:
    """(channel name, destination, callee id number, source, context) for an endpoint."""
    chan_type, _, data = endpoint.partition("/")
    if chan_type == "loopback":
        parts = data.split("/")
        exten = parts[0]
        context = parts[1] if len(parts) > 1 and parts[1] else "default"
        return f"loopback/{exten}-a", exten, context, "mod_loopback", context
    if chan_type == "user":
        user = data.split("@")[0]
        return f"sofia/internal/{data}", user, user, "mod_sofia", "default"
    if chan_type == "sofia":
        dest = data.split("/", 1)[-1]
        return f"sofia/{data}", dest, dest.split("@")[0], "mod_sofia", "default"
    return endpoint, data, data, f"mod_{chan_type}", "default"


def create_leg(
    fs: DialSwitch,
    caller: Channel | None,
    endpoint: str,
    variables: list[tuple[str, str]],
    early_ok: bool,
) -> Leg:
    """switch_core_session_outgoing_channel + the endpoint: a Leg, maybe a failed one."""
    behaviour = fs.phones.behaviour_for(endpoint)
    call = caller.call if caller is not None else None
    leg = Leg(fs, endpoint, behaviour, call)
    fs.legs.append(leg)
    if call is not None:
        call.legs.append(leg)
    chan_type, _, data = endpoint.partition("/")
    if chan_type == "error":
        leg.failed_cause = str2cause(data)
    elif behaviour.action == "unregistered":
        leg.failed_cause = behaviour.cause
    if leg.failed_cause:
        leg.note("failed", leg.failed_cause)
        return leg
    vmap = {k.lower(): v for k, v in variables}
    name, dest, callee_number, source, context = _names(endpoint)
    uuid = vmap.get("origination_uuid") or str(uuidlib.uuid4())
    if caller is not None:
        profile = caller.profile.clone()
        profile.direction = "outbound"
        name_override = vmap.get("origination_caller_id_name") or caller.get_var(
            "effective_caller_id_name"
        )
        number_override = vmap.get("origination_caller_id_number") or caller.get_var(
            "effective_caller_id_number"
        )
        if name_override:
            profile.caller_id_name = name_override
        if number_override:
            profile.caller_id_number = number_override
    else:
        number = vmap.get("origination_caller_id_number") or "0000000000"
        profile = CallerProfile(
            direction="outbound",
            logical_direction="outbound",
            caller_id_name=vmap.get("origination_caller_id_name") or "",
            caller_id_number=number,
            orig_caller_id_name=vmap.get("origination_caller_id_name") or "",
            orig_caller_id_number=number,
            ani=number,
        )
    if vmap.get("origination_ani"):
        profile.ani = vmap["origination_ani"]
    if "origination_privacy" in vmap:
        priv = vmap["origination_privacy"].lower()
        profile.screen = "screen" in priv
        profile.hide_name = "hide_name" in priv
        profile.hide_number = "hide_number" in priv
    profile.destination_number = dest
    profile.callee_id_name = "Outbound Call"
    profile.callee_id_number = callee_number
    profile.source = source
    profile.context = context
    profile.profile_index = "1"
    profile.times = Times()
    a = Channel(fs, name=name, direction="outbound", profile=profile, uuid=uuid, role="leg")
    a.leg = leg
    if caller is not None:
        a.originating = caller
        a.originator = caller.profile.clone()
        a.last_profile_type = "originator"
    leg.channel = a
    fs.add_channel(a)
    a.set_var("direction", "outbound")
    a.set_var("is_outbound", "true")
    a.set_var("uuid", uuid)
    a.set_var("call_uuid", uuid)
    a.set_var("session_id", str(a.session_id))
    for k, v in (("read_codec", "L16"), ("read_rate", "8000")):
        a.set_var(k, v)
    for k, v in (("write_codec", "L16"), ("write_rate", "8000")):
        a.set_var(k, v)
    a.set_var("channel_name", name)
    if vmap.get("origination_uuid"):  # the session took over the requested uuid
        a.set_var("uuid", uuid)
        a.set_var("call_uuid", uuid)
    if caller is not None and chan_type in ("sofia", "user"):
        # mod_sofia's outgoing channel takes the caller's custom headers along (``~sip_h_``:
        # X-, P-, ... headers a SIP caller sent) unless sip_copy_custom_headers is false
        copy = caller.get_var("sip_copy_custom_headers")
        if copy is None or is_true(copy):
            for k, v in caller.vars.as_dict().items():
                if k.lower().startswith("sip_h_") and v is not None:
                    a.set_var(k, v)
    for k, v in variables:
        a.set_var(k, v)
    a.set_var("originate_early_media", "true" if early_ok else "false")
    if caller is not None:
        a.set_var("originator", caller.uuid)
        a.set_var("signal_bond", caller.uuid)
        a.set_var("call_uuid", caller.get_var("call_uuid") or caller.uuid)
        a.set_var("originating_leg_uuid", caller.uuid)
    a.set_var("originate_endpoint", chan_type)
    b: Channel | None = None
    if chan_type == "loopback":
        b = _loopback_b(fs, a, leg, variables, dest, context)
        a.set_var("other_loopback_leg_uuid", b.uuid)
        a.set_var("loopback_leg", "A")
    a.running_state = "CS_INIT"
    a.state = "CS_ROUTING"
    a.fire("CHANNEL_CREATE")
    a.fire("CHANNEL_ORIGINATE")
    a.state = a.running_state = "CS_CONSUME_MEDIA"
    leg.note("created", uuid)
    a.hooks.append(_leg_hook)
    a.start(_leg_session)
    if b is not None:
        b.running_state = "CS_INIT"
        b.state = "CS_ROUTING"
        b.fire("CHANNEL_CREATE")
        b.state = b.running_state = "CS_EXECUTE"
        b.callstate = "RINGING"
        b.start(lambda ch: _run_behaviour(leg))
    else:
        fs.spawn(_run_behaviour, leg)
    return leg


def _loopback_b(
    fs: DialSwitch,
    a: Channel,
    leg: Leg,
    variables: list[tuple[str, str]],
    exten: str,
    context: str,
) -> Channel:
    p = a.profile
    profile = CallerProfile(
        direction="inbound",
        logical_direction="inbound",
        caller_id_name=p.caller_id_name,
        caller_id_number=p.caller_id_number,
        orig_caller_id_name=p.orig_caller_id_name,
        orig_caller_id_number=p.orig_caller_id_number,
        callee_id_name="Outbound Call",
        callee_id_number=context,
        ani=p.ani,
        destination_number=exten,
        source="mod_loopback",
        context=context,
        profile_index="1",
        screen=p.screen,
        hide_name=p.hide_name,
        hide_number=p.hide_number,
    )
    b = Channel(fs, name=f"loopback/{exten}-b", direction="inbound", profile=profile, role="phone")
    b.leg = leg
    leg.remote = b
    fs.add_channel(b)
    b.set_var("direction", "inbound")
    b.set_var("uuid", b.uuid)
    b.set_var("call_uuid", b.uuid)
    b.set_var("session_id", str(b.session_id))
    b.set_var("channel_name", b.name)
    for k, v in (("read_codec", "L16"), ("read_rate", "8000")):
        b.set_var(k, v)
    for k, v in (("write_codec", "L16"), ("write_rate", "8000")):
        b.set_var(k, v)
    for k, v in variables:
        b.set_var(k, v)
    b.set_var("other_loopback_leg_uuid", a.uuid)
    b.set_var("loopback_leg", "B")
    b.hooks.append(_b_hook)
    return b


def _leg_hook(ch: Channel, what: str, detail: str | None) -> None:
    """A leg events; loopback: A's hangup processing hangs up B (mod_loopback on_hangup)."""
    leg = ch.leg
    if leg is None:
        return
    if what != "hangup_state":
        leg.note(what, detail or "")
    elif leg.remote is not None and leg.remote.up():
        leg.remote.hangup(detail or "NORMAL_CLEARING")


def _b_hook(ch: Channel, what: str, detail: str | None) -> None:
    """Loopback B: its hangup processing hangs up A with the same cause."""
    leg = ch.leg
    if leg is not None and what == "hangup_state" and leg.channel and leg.channel.up():
        leg.channel.hangup(detail or "NORMAL_CLEARING")


def _leg_session(ch: Channel) -> None:
    """An A leg's session: driven from outside; runs apps an api ``originate`` gives it."""
    while True:
        ch.sig.clear()
        if ch.down():
            return
        if ch.extension:
            name, arg = ch.extension.pop(0)
            if ch.state != "CS_EXECUTE":
                ch.state = ch.running_state = "CS_EXECUTE"
                ch.set_var("call_uuid", ch.uuid)
            if not execute_application(ch, name, arg):
                return
            if not ch.extension and ch.ready():
                ch.hangup("NORMAL_CLEARING")
            continue
        ch.sig.wait()


# --- behaviours ------------------------------------------------------------------------------


class _Remote:
    """The far end of a leg: the loopback B channel running dialplan apps, or the phone."""

    def __init__(self, leg: Leg) -> None:
        self.leg = leg
        self.a = leg.channel
        self.b = leg.remote

    def alive(self) -> bool:
        ch = self.b or self.a
        return ch is not None and ch.ready()

    def _app(self, name: str, arg: str | None, action: Callable[[], None]) -> None:
        assert self.b is not None

        def run(ch: Channel, data: str | None) -> None:
            action()

        exec_app(self.b, name, arg, run)

    def ring(self) -> None:
        a, b = self.a, self.b
        if a is None:
            return
        if b is not None:

            def both() -> None:
                a.mark_ring_ready()
                b.mark_ring_ready()

            self._app("ring_ready", None, both)
        else:
            a.mark_ring_ready()

    def pre_answer(self) -> None:
        a, b = self.a, self.b
        if a is None:
            return
        if b is not None:

            def both() -> None:
                a.mark_pre_answered()
                b.pre_answer()

            self._app("pre_answer", None, both)
        else:
            a.mark_pre_answered()
            a.set_var("endpoint_disposition", "EARLY MEDIA")

    def answer(self) -> None:
        a, b = self.a, self.b
        if a is None:
            return
        if b is not None:

            def both() -> None:
                a.mark_answered()
                a.set_var("endpoint_disposition", "ANSWER")
                b.answer()

            self._app("answer", None, both)
        else:
            a.mark_answered()
            a.set_var("endpoint_disposition", "ANSWER")

    def sleep(self, seconds: float | None) -> None:
        if self.b is not None:
            arg = "-1" if seconds is None else str(int(seconds * 1000))

            def run(ch: Channel, data: str | None) -> None:
                media_wait(ch, seconds, dtmf_breaks=False)

            exec_app(self.b, "sleep", arg, run)
        elif self.a is not None:
            end = None if seconds is None else time.time() + seconds
            while self.a.up():
                self.a.sig.clear()
                if end is not None and time.time() >= end:
                    return
                self.a.sig.wait(None if end is None else end - time.time())

    def hangup(self, cause: str) -> None:
        if self.b is not None:
            if self.b.up():
                exec_app(self.b, "hangup", cause, lambda ch, data: ch.hangup(cause))
        elif self.a is not None:
            self.a.hangup(cause)


def _run_behaviour(leg: Leg) -> None:
    """The phone's script (the loopback B leg's dialplan in the transcripts)."""
    b = leg.behaviour
    r = _Remote(leg)
    if leg.remote is not None:
        exten = leg.remote.profile.destination_number
        head, sep, digits = exten.rpartition("-")
        dp_match = f"ARRAY::{exten}|:{digits}" if sep and digits.isdigit() else exten
        leg.remote.set_var("DP_MATCH", dp_match)
        leg.remote.set_var("call_uuid", leg.remote.uuid)
    ring_first = b.ring if b.ring is not None else (b.after > 0 or b.action == "ring")
    if ring_first:
        r.ring()
    if b.after > 0:
        r.sleep(b.after)
    if not r.alive():
        return
    if b.action == "answer":
        r.answer()
        if b.talk is not None:
            if b.talk > 0:
                r.sleep(b.talk)
            if r.alive():
                r.hangup("NORMAL_CLEARING")
        else:
            r.sleep(None)
    elif b.action == "ring":
        r.sleep(None)
    elif b.action == "early":
        r.pre_answer()
        r.sleep(b.give_up)
        if r.alive():
            r.hangup(b.cause)
    else:
        r.hangup(b.cause)
