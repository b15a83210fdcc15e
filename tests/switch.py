"""The switch the end-to-end scenarios run against: the stand-in, or a real FreeSWITCH.

``FSACD_TEST_FREESWITCH=HOST:PORT`` names the inbound event socket of a real *test* switch
(password ``FSACD_ESL_PASSWORD``, default ``ClueCon``) whose default context includes
``freeswitch/test/fsacd-test.xml``; without it only the stand-in runs. Both backends give a
scenario the same small interface::

    contact = switch.contact("slow", "1001")         # an agent phone of that kind
    call = switch.place_call(destination="5000", caller_number="+4922129191999")
    leg = call.wait_bridged(10)                       # AgentLeg: uuid, agent, caller ID ...
    call.send_dtmf("1"); call.hangup(); call.wait_hangup(10)
    switch.channels()                                 # live channels of this test (leaks)

Agent phones are ``loopback/KIND-ID/default`` on both (the test dialplan's extensions; the
stand-in gets the same behaviour registered as a PhoneBehaviour):

| kind | phone |
|---|---|
| ``agent`` | answers at once, talks until the call is ended |
| ``slow`` | rings 1.5 s, then answers |
| ``noanswer`` | rings, never answers |
| ``busy`` / ``reject`` | refuses at once (USER_BUSY / CALL_REJECTED) |
| ``early`` | early media for about 6 s, never answers |
| ``talkN`` | answers at once, talks N ms, hangs up |

The caller is the channel fsacd sees (on FreeSWITCH the loopback B leg ``loopback/5000-b``
whose dialplan runs ``socket 127.0.0.1:8084 async full``). When fsacd lets go of it with
``socket_resume`` the dialplan goes on: ``set fsacd_test_after_socket=true``, ``answer``, a
short tone, ``park`` (the stand-in runs the same after-socket dialplan).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid as uuidlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent

from fsacd.config import split_address
from fsacd.esl.framing import Event
from fsacd.esl.session import ESLError, InboundClient
from fsacd.standin import FakeFreeSwitch, PhoneBehaviour

#: inbound event socket of a real test switch (HOST:PORT); unset: stand-in only
ENV_SWITCH = "FSACD_TEST_FREESWITCH"
#: its password
ENV_PASSWORD = "FSACD_ESL_PASSWORD"
#: where the controller under test listens for a real switch's ``socket`` (default: the test
#: dialplan's 127.0.0.1:8084); another address is passed to the dialplan per call
ENV_LISTEN = "FSACD_TEST_LISTEN"
SKIP_REASON = "FSACD_TEST_FREESWITCH not set: real-FreeSWITCH scenarios need a switch"
DEFAULT_LISTEN = ("127.0.0.1", 8084)

#: what the test dialplan runs after ``socket`` (freeswitch/test/fsacd-test.xml)
AFTER_SOCKET: list[tuple[str, str | None]] = [
    ("set", "fsacd_test_after_socket=true"),
    ("answer", None),
    ("playback", "tone_stream://%(200,0,350);loops=1"),
    ("park", None),
]

#: events the real backend follows
EVENTS = [
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE",
    "DTMF",
    "RECORD_START",
    "RECORD_STOP",
]

_AGENT_VAR = re.compile(r"fsacd_agent=(\w+)")
_KIND = re.compile(r"^(agent|slow|noanswer|busy|reject|early|talk(\d+))$")
_ID = re.compile(r"^\w+$")
#: values we put in an originate's {} block (no separators, quotes or braces)
_SAFE_VALUE = re.compile(r"^[^,{}'\"\[\]\r\n]*$")


def standin_behaviour(kind: str) -> PhoneBehaviour:
    """The stand-in's phone for a contact kind (what the test dialplan's extension does)."""
    m = _KIND.match(kind)
    if not m:
        raise ValueError(f"unknown phone kind {kind!r}")
    if m.group(2):
        return PhoneBehaviour.answers(talk=int(m.group(2)) / 1000)
    return {
        "agent": PhoneBehaviour.answers(),
        "slow": PhoneBehaviour.answers(after=1.5),
        "noanswer": PhoneBehaviour.never_answers(),
        "busy": PhoneBehaviour.busy(),
        "reject": PhoneBehaviour.rejects(),
        "early": PhoneBehaviour.early_media(give_up=6.0),
    }[kind]


def contact_for(kind: str, agent_id: str) -> str:
    if not _KIND.match(kind):
        raise ValueError(f"unknown phone kind {kind!r}")
    if not _ID.match(agent_id):
        raise ValueError(f"agent id {agent_id!r}: letters, digits and _ only")
    return f"loopback/{kind}-{agent_id}/default"


def poll(
    pred: Callable[[], object],
    timeout: float,
    what: str | Callable[[], str],
    step: float = 0.02,
) -> object:
    """``pred()`` once truthy; TimeoutError naming ``what`` (or ``what()``, computed then)
    after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.time() >= deadline:
            text = what() if callable(what) else what
            raise TimeoutError(f"timed out after {timeout}s waiting for {text}")
        gevent.sleep(step)


@dataclass
class AgentLeg:
    """The agent's leg of a bridge, as the agent's phone is shown it."""

    uuid: str
    agent: str
    endpoint: str
    caller_id_number: str
    caller_id_name: str
    hide_number: bool
    hide_name: bool
    #: channel variables of the leg (names without ``variable_``)
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def sip_headers(self) -> dict[str, str]:
        """Extra SIP headers the phone's INVITE carries (``sip_h_*`` variables)."""
        return {k[6:]: v for k, v in self.variables.items() if k.lower().startswith("sip_h_")}


class CallHandle:
    """A caller. ``uuid`` is the channel fsacd drives (its call id in Redis)."""

    uuid: str
    created_at: float
    #: when the bridge to an agent was seen (None before)
    bridged_at: float | None = None

    @property
    def latency(self) -> float | None:
        """Seconds from placing the call to its bridge."""
        return None if self.bridged_at is None else self.bridged_at - self.created_at

    # implemented per backend
    def wait_bridged(self, timeout: float) -> AgentLeg:
        raise NotImplementedError

    def wait_hangup(self, timeout: float) -> str:
        raise NotImplementedError

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        raise NotImplementedError

    def send_dtmf(self, digits: str) -> None:
        raise NotImplementedError

    def apps(self) -> list[tuple[str, str]]:
        """(application, data) of every application the channel started, in order."""
        raise NotImplementedError

    def rung_agents(self) -> list[str]:
        """``fsacd_agent`` of every agent leg the switch reported for this call, in order (on
        FreeSWITCH a ring-all leg that loses the race while it is set up may never show)."""
        raise NotImplementedError

    def offers(self) -> list[list[str]]:
        """The agents of each ``bridge`` fsacd sent the caller, in order (``fsacd_agent`` of
        every leg of its dial string)."""
        return [_AGENT_VAR.findall(d) for a, d in self.apps() if a == "bridge"]

    def agent_leg(self) -> AgentLeg:
        """The bridged agent leg (read while it is up)."""
        raise NotImplementedError

    def variable(self, name: str) -> str | None:
        raise NotImplementedError

    def recording_started(self) -> bool:
        """The switch started recording this channel (RECORD_START)."""
        return bool(self.recording_paths())

    def recording_paths(self) -> list[str]:
        """The file of every recording the switch started on this channel, as it reports it
        (``Record-File-Path``: on FreeSWITCH the full path it writes)."""
        raise NotImplementedError

    @property
    def answered(self) -> bool:
        raise NotImplementedError

    @property
    def is_up(self) -> bool:
        raise NotImplementedError

    @property
    def hangup_cause(self) -> str | None:
        raise NotImplementedError

    # common
    def agent_leg_variables(self) -> dict[str, str]:
        return self.agent_leg().variables

    def wait_app(self, app: str, timeout: float, data: str | None = None) -> None:
        """Until the channel started ``app`` (with ``data`` in its argument, if given)."""

        def seen() -> bool:
            return any(a == app and (data is None or data in (d or "")) for a, d in self.apps())

        poll(seen, timeout, f"{app} {data or ''} on {self.uuid}")

    def stays_bridged(self, seconds: float) -> bool:
        """True if the call is still up and bridged after ``seconds`` (checked throughout)."""
        end = time.time() + seconds
        while time.time() < end:
            if not self.is_up or not self._bridged_now():
                return False
            gevent.sleep(0.05)
        return self.is_up and self._bridged_now()

    def _bridged_now(self) -> bool:
        raise NotImplementedError


# --- the stand-in --------------------------------------------------------------------------


class StandinCall(CallHandle):
    def __init__(self, call) -> None:
        self.call = call
        self.uuid = call.uuid
        self.created_at = call.created

    def _leg_bridged_at(self, leg) -> float | None:
        for t, what, _ in leg.log:
            if what == "bridged":
                return t
        return None

    def wait_bridged(self, timeout: float) -> AgentLeg:
        leg = poll(lambda: self.call.bridged_leg, timeout, f"bridge of {self.uuid}")
        self.bridged_at = self._leg_bridged_at(leg) or time.time()
        return self.agent_leg()

    def _bridged_now(self) -> bool:
        return self.call.bridged_leg is not None

    def wait_hangup(self, timeout: float) -> str:
        return self.call.wait_hangup(timeout)

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        self.call.hangup(cause)

    def send_dtmf(self, digits: str) -> None:
        self.call.send_dtmf(digits)

    def apps(self) -> list[tuple[str, str]]:
        return [(a, d or "") for a, d in self.call.apps]

    def rung_agents(self) -> list[str]:
        return [leg.variables.get("fsacd_agent", "") for leg in self.call.legs]

    def agent_leg(self) -> AgentLeg:
        leg = self.call.bridged_leg
        if leg is None:
            answered = [g for g in self.call.legs if g.answered]
            if not answered:
                raise AssertionError(f"call {self.uuid} has no bridged agent leg")
            leg = answered[-1]
        d = leg.display
        v = leg.variables
        return AgentLeg(
            uuid=leg.uuid or "",
            agent=v.get("fsacd_agent", ""),
            endpoint=leg.endpoint,
            caller_id_number=d.number,
            caller_id_name=d.name,
            hide_number=d.hide_number,
            hide_name=d.hide_name,
            variables=dict(v),
        )

    def variable(self, name: str) -> str | None:
        return self.call.variables.get(name)

    def recording_paths(self) -> list[str]:
        return [detail for _, what, detail in self.call.log if what == "record_start"]

    @property
    def answered(self) -> bool:
        return self.call.answered

    @property
    def is_up(self) -> bool:
        return self.call.is_up

    @property
    def hangup_cause(self) -> str | None:
        return self.call.hangup_cause


class StandinSwitch:
    """fsacd.standin.FakeFreeSwitch, phones registered per contact kind."""

    name = "standin"
    real = False

    def __init__(self) -> None:
        self.password = "ClueCon"
        self.fs = FakeFreeSwitch(
            inbound=("127.0.0.1", 0), password=self.password, dialplan_after_socket=AFTER_SOCKET
        )
        self.fs.start()
        assert self.fs.inbound_address is not None
        self.inbound: tuple[str, int] = self.fs.inbound_address
        #: where the controller under test listens (any free port)
        self.listen: tuple[str, int] = ("127.0.0.1", 0)
        self.calls: list[StandinCall] = []

    def attach(self, address: tuple[str, int]) -> None:
        """Send callers to the controller at ``address``."""
        self.fs.socket_target = address

    def contact(self, kind: str, agent_id: str) -> str:
        c = contact_for(kind, agent_id)
        self.fs.phones.register(c, standin_behaviour(kind))
        return c

    def sip_contact(self, kind: str, agent_id: str) -> str:
        """A SIP phone of that kind (the stand-in treats it like any contact)."""
        contact_for(kind, agent_id)
        c = f"sofia/internal/{kind}-{agent_id}@127.0.0.1:5060"
        self.fs.phones.register(c, standin_behaviour(kind))
        return c

    def phone_view(self, leg: AgentLeg) -> dict[str, str]:
        """The variables of the agent's call as the phone receives it."""
        return dict(leg.variables)

    def place_call(
        self,
        destination: str = "5000",
        caller_number: str = "+4922129191999",
        caller_name: str = "Erika Muster",
        variables: dict[str, str] | None = None,
    ) -> StandinCall:
        call = StandinCall(
            self.fs.place_call(
                destination=destination,
                caller_number=caller_number,
                caller_name=caller_name,
                variables=variables or {},
            )
        )
        self.calls.append(call)
        return call

    def api(self, cmd: str) -> str:
        return self.fs.execute_api(cmd)

    def recordings_dir(self) -> str | None:
        """FreeSWITCH's recordings directory (``global_getvar recordings_dir``)."""
        return self.fs.recordings_dir

    def channels(self) -> int:
        return len(self.fs.channels)

    def hangup_all(self, timeout: float = 5.0) -> None:
        for ch in list(self.fs.channels.values()):
            if ch.up():
                ch.hangup("NORMAL_CLEARING")
        poll(lambda: self.channels() == 0, timeout, "stand-in channels gone")

    def stop(self) -> None:
        self.fs.stop()


# --- a real FreeSWITCH ---------------------------------------------------------------------


class RealCall(CallHandle):
    def __init__(self, switch: RealSwitch, a_uuid: str, created_at: float) -> None:
        self.switch = switch
        self.a_uuid = a_uuid  # the loopback A leg: the "phone" of the caller (parked)
        self.uuid = ""
        self.created_at = created_at
        self.originate_result: str | None = None
        self._agent_leg: AgentLeg | None = None

    def events(self, name: str | None = None) -> list[tuple[float, Event]]:
        return [(t, e) for t, e in self.switch.log(self.uuid) if name is None or e.name == name]

    def _bridge_event(self) -> tuple[float, Event] | None:
        evs = self.events("CHANNEL_BRIDGE")
        return evs[-1] if evs else None

    def _bridged_now(self) -> bool:
        evs = [e.name for _, e in self.switch.log(self.uuid)]
        b = max((i for i, n in enumerate(evs) if n == "CHANNEL_BRIDGE"), default=-1)
        u = max((i for i, n in enumerate(evs) if n == "CHANNEL_UNBRIDGE"), default=-1)
        return b > u

    def wait_bridged(self, timeout: float) -> AgentLeg:
        t, ev = poll(self._bridge_event, timeout, f"bridge of {self.uuid}")  # type: ignore[misc]
        self.bridged_at = t
        other = ev.get("Other-Leg-Unique-ID") or ""
        self._agent_leg = self.switch.agent_leg(other)
        return self._agent_leg

    def wait_hangup(self, timeout: float) -> str:
        _, ev = poll(  # type: ignore[misc]
            lambda: next(iter(self.events("CHANNEL_HANGUP_COMPLETE")), None),
            timeout,
            f"hang-up of {self.uuid}",
        )
        return ev.get("Hangup-Cause") or ""

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """The caller hangs up (the channel fsacd drives ends with ``cause``)."""
        if self.is_up:
            self.switch.api(f"uuid_kill {self.uuid} {cause}")

    def send_dtmf(self, digits: str) -> None:
        """The caller presses keys (as if they came in on the caller's line)."""
        if not re.fullmatch(r"[0-9*#A-D]+", digits):
            raise ValueError(f"bad DTMF {digits!r}")
        reply = self.switch.api(f"uuid_recv_dtmf {self.uuid} {digits}")
        if not reply.startswith("+OK"):
            raise AssertionError(f"uuid_recv_dtmf {self.uuid}: {reply.strip()}")

    def apps(self) -> list[tuple[str, str]]:
        return [
            (e.get("Application") or "", e.get("Application-Data") or "")
            for _, e in self.events("CHANNEL_EXECUTE")
        ]

    def rung_agents(self) -> list[str]:
        return [e.var("fsacd_agent") or "" for e in self.switch.agent_legs(self.uuid)]

    def agent_leg(self) -> AgentLeg:
        if self._agent_leg is None:
            ev = self._bridge_event()
            if ev is None:
                raise AssertionError(f"call {self.uuid} was never bridged")
            self._agent_leg = self.switch.agent_leg(ev[1].get("Other-Leg-Unique-ID") or "")
        return self._agent_leg

    def variable(self, name: str) -> str | None:
        reply = self.switch.api(f"uuid_getvar {self.uuid} {name}").strip()
        if reply.startswith("-ERR") or reply == "_undef_":
            return None
        return reply

    def recording_paths(self) -> list[str]:
        return [e.get("Record-File-Path") or "" for _, e in self.events("RECORD_START")]

    @property
    def answered(self) -> bool:
        return bool(self.events("CHANNEL_ANSWER"))

    @property
    def is_up(self) -> bool:
        return bool(self.uuid) and not self.events("CHANNEL_HANGUP_COMPLETE")

    @property
    def hangup_cause(self) -> str | None:
        evs = self.events("CHANNEL_HANGUP_COMPLETE")
        return evs[0][1].get("Hangup-Cause") if evs else None


class RealSwitch:
    """A real FreeSWITCH through its inbound event socket (callers and phones: loopback)."""

    name = "freeswitch"
    real = True

    def __init__(
        self,
        address: tuple[str, int],
        password: str,
        listen: tuple[str, int] = DEFAULT_LISTEN,
    ) -> None:
        self.inbound = address
        self.password = password
        self.listen = listen
        self.calls: list[RealCall] = []
        self._log: dict[str, list[tuple[float, Event]]] = defaultdict(list)
        self._b_of: dict[str, str] = {}  # loopback A uuid -> B uuid
        self._legs_of: dict[str, dict[str, Event]] = defaultdict(dict)  # call -> leg -> event
        self._mine: set[str] = set()  # channels of this test: callers and their agent legs
        self.client = InboundClient(*address, password, timeout=5.0, command_timeout=15.0)
        self.client.connect()
        self.client.subscribe(EVENTS)
        self._reader = gevent.spawn(self._read)

    # --- events ------------------------------------------------------------------------

    def _read(self) -> None:
        while True:
            ev = self.client.next_event(timeout=1.0)
            if ev is None:
                if not self.client.connected:
                    return
                continue
            if ev.name == "SOCKET_CLOSED":
                return  # closed: next_event would return this at once, forever (a busy loop)
            uid = ev.get("Unique-ID")
            if not uid:
                continue
            self._log[uid].append((time.time(), ev))
            other = ev.var("other_loopback_leg_uuid") or ""
            if ev.var("loopback_leg") == "B" and other:
                self._b_of.setdefault(other, uid)
            call_id = ev.var("fsacd_call") or ""
            if call_id and ev.var("origination_uuid") == uid:  # an agent leg fsacd placed
                self._legs_of[call_id].setdefault(uid, ev)
            if uid not in self._mine and (call_id in self._mine or other in self._mine):
                self._mine.add(uid)  # an agent leg of our call, or a loopback partner

    def log(self, uuid: str) -> list[tuple[float, Event]]:
        return list(self._log.get(uuid, ()))

    def agent_legs(self, call_id: str) -> list[Event]:
        """First event of each agent leg fsacd placed for a call (its ``origination_uuid``:
        the loopback A side), in order."""
        return list(self._legs_of.get(call_id, {}).values())

    def agent_leg(self, uuid: str) -> AgentLeg:
        """The leg as ``uuid_dump`` shows it (or its last event if it is already gone)."""
        reply = self.api(f"uuid_dump {uuid} json")
        try:
            h = json.loads(reply)
        except ValueError:
            evs = self.log(uuid)
            if not evs:
                raise AssertionError(f"agent leg {uuid}: {reply.strip()}") from None
            h = evs[-1][1].headers
        variables = {k[9:]: v for k, v in h.items() if k.startswith("variable_")}
        return AgentLeg(
            uuid=uuid,
            agent=variables.get("fsacd_agent", ""),
            endpoint=h.get("Channel-Name") or "",
            caller_id_number=h.get("Caller-Caller-ID-Number") or "",
            caller_id_name=h.get("Caller-Caller-ID-Name") or "",
            hide_number=h.get("Caller-Privacy-Hide-Number") == "true",
            hide_name=h.get("Caller-Privacy-Hide-Name") == "true",
            variables=variables,
        )

    # --- driving -----------------------------------------------------------------------

    def api(self, cmd: str) -> str:
        return self.client.api(cmd)

    def recordings_dir(self) -> str | None:
        """FreeSWITCH's recordings directory (``$${recordings_dir}``)."""
        reply = self.api("global_getvar recordings_dir").strip()
        return reply if reply.startswith("/") else None

    def attach(self, address: tuple[str, int]) -> None:
        """The dialplan decides where callers go: it must be where the controller listens."""
        if address != self.listen:
            raise AssertionError(f"controller at {address}, the test dialplan calls {self.listen}")

    def contact(self, kind: str, agent_id: str) -> str:
        return contact_for(kind, agent_id)

    def sip_contact(self, kind: str, agent_id: str) -> str:
        """A SIP phone of that kind: an INVITE through the switch's first sofia profile back
        to itself, answered by the test dialplan's extension ``KIND-ID`` (LookupError when
        the switch has no sofia profile)."""
        contact_for(kind, agent_id)
        status = self.api("sofia status")
        m = re.search(r"^\s*(\S+)\s+profile\s+sip:[^@\s]+@(\S+)\s+RUNNING", status, re.M)
        if not m:
            raise LookupError("the switch has no running sofia profile")
        return f"sofia/{m.group(1)}/{kind}-{agent_id}@{m.group(2)}"

    def phone_view(self, leg: AgentLeg) -> dict[str, str]:
        """The variables of the channel the agent's phone gets: for a SIP contact the far end
        of fsacd's leg (the same ``sip_call_id``), whose ``sip_h_*`` are the headers of the
        INVITE the phone received."""
        call_id = leg.variables.get("sip_call_id")
        if not call_id:
            return dict(leg.variables)

        def far() -> str | None:
            for uid, evs in list(self._log.items()):
                if uid != leg.uuid and any(e.var("sip_call_id") == call_id for _, e in evs):
                    return uid
            return None

        uid = poll(far, 10, f"the far end of SIP leg {leg.uuid}")
        return self.agent_leg(str(uid)).variables

    def place_call(
        self,
        destination: str = "5000",
        caller_number: str = "+4922129191999",
        caller_name: str = "Erika Muster",
        variables: dict[str, str] | None = None,
    ) -> RealCall:
        """``originate {...}loopback/DEST/default &park``: the B leg runs the test dialplan."""
        if not re.fullmatch(r"50\d\d", destination):
            raise ValueError("the test dialplan hands 5000..5099 to fsacd")
        a = str(uuidlib.uuid4())
        values = {
            "origination_uuid": a,
            "origination_caller_id_number": caller_number,
            "origination_caller_id_name": caller_name,
            **(variables or {}),
        }
        if self.listen != DEFAULT_LISTEN:  # the test dialplan's fsacd-test-caller-elsewhere
            values["fsacd_test_socket"] = f"{self.listen[0]}:{self.listen[1]}"
        parts = []
        for k, v in values.items():
            if not re.fullmatch(r"[\w-]+", k) or not _SAFE_VALUE.match(v):
                raise ValueError(f"variable {k}={v!r} does not fit an originate")
            parts.append(f"{k}='{v}'" if " " in v else f"{k}={v}")
        cmd = f"originate {{{','.join(parts)}}}loopback/{destination}/default &park"
        call = RealCall(self, a, time.time())
        self._mine.add(a)
        self.calls.append(call)

        def originate() -> None:
            try:
                call.originate_result = self.client.bgapi(cmd, timeout=120)
            except ESLError as exc:
                call.originate_result = f"-ERR {exc}"

        gevent.spawn(originate)

        def b_leg() -> str | None:
            if a in self._b_of:
                return self._b_of[a]
            if (call.originate_result or "").startswith("-ERR"):
                raise AssertionError(f"originate failed: {call.originate_result.strip()}")
            return None

        call.uuid = poll(b_leg, 10, f"loopback B leg of {a}")  # type: ignore[assignment]
        self._mine.add(call.uuid)
        for uid, evs in list(self._log.items()):  # legs seen before we knew the uuid
            if any(e.var("fsacd_call") == call.uuid for _, e in evs):
                self._mine.add(uid)
        return call

    def _live_mine(self) -> list[str]:
        out = []
        for uid in list(self._mine):
            evs = self._log.get(uid)
            if evs and not any(e.name == "CHANNEL_HANGUP_COMPLETE" for _, e in evs):
                out.append(uid)
        return out

    def channels(self) -> int:
        """Live channels of this test (its callers and the agent legs of their calls)."""
        live = self._live_mine()
        return sum(1 for uid in live if self.api(f"uuid_exists {uid}").strip() == "true")

    def hangup_all(self, timeout: float = 10.0) -> None:
        """Hang up every channel this test placed (never other users' channels)."""
        for uid in self._live_mine():
            self.api(f"uuid_kill {uid} NORMAL_CLEARING")
        poll(lambda: self.channels() == 0, timeout, "test channels gone", step=0.1)

    def stop(self) -> None:
        try:
            self.hangup_all()
        finally:
            self._reader.kill(block=False)
            self.client.close()


# --- selection -----------------------------------------------------------------------------


def real_switch_address() -> tuple[str, int] | None:
    text = os.environ.get(ENV_SWITCH, "").strip()
    return split_address(text) if text else None


def listen_address() -> tuple[str, int]:
    text = os.environ.get(ENV_LISTEN, "").strip()
    return split_address(text) if text else DEFAULT_LISTEN


def port_free(address: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError:
            return False
    return True


def open_switch(kind: str) -> StandinSwitch | RealSwitch:
    """``standin``, or ``freeswitch`` (raises LookupError with the skip reason if unset)."""
    if kind == "standin":
        return StandinSwitch()
    address = real_switch_address()
    if address is None:
        raise LookupError(SKIP_REASON)
    listen = listen_address()
    if not port_free(listen):
        raise AssertionError(
            f"{listen[0]}:{listen[1]} is in use (another controller?): the real-switch scenarios "
            f"need it for the test dialplan's socket, or set {ENV_LISTEN}"
        )
    return RealSwitch(address, os.environ.get(ENV_PASSWORD) or "ClueCon", listen)
