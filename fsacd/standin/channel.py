"""A FreeSWITCH channel: caller profile, variables, state, flags, events and waiting.

Everything runs in gevent greenlets. A channel's own session greenlet runs its script
(dialplan, applications); other greenlets (an api ``uuid_kill``, a phone hanging up, a
controller socket) only change state and ``kick`` it. Code running in the session waits with
the pattern ``ch.sig.clear(); <check>; ch.sig.wait(timeout)``, so a kick is never lost.
"""

from __future__ import annotations

import copy
import math
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import gevent
import gevent.event

from .bus import EventBus
from .causes import q850
from .chanvars import Value, VarStore
from .eventheaders import EXTENDED, Event, EventSource, core_headers


class Switch(EventSource, Protocol):
    """The switch (a FakeFreeSwitch) as channels and the applications they run see it."""

    bus: EventBus
    #: the media clock (see Channel.next_tick) and the socket channel's first tick
    tick: float
    first_tick: float | None
    #: what the applications read: media durations, the ``socket`` connect timeout
    media_durations: dict[str, float | None]
    default_file_duration: float
    connect_timeout: float
    #: where a relative recording path goes without the channel's ``sound_prefix``
    sounds_dir: str
    #: directories a recording cannot be opened in (permissions)
    unwritable: set[str]
    errors: list[tuple[str, BaseException]]

    def next_session_id(self) -> int: ...

    def add_channel(self, ch: Channel) -> None: ...

    def remove_channel(self, ch: Channel) -> None: ...

    def locate(self, uid: str | None) -> Channel | None: ...

    def route(self, ch: Channel, exten: str) -> list[tuple[str, str | None]] | None: ...

    def spawn(self, func: Callable[..., Any], *args: Any) -> gevent.Greenlet: ...


#: One media frame: FreeSWITCH's session threads step in 20 ms frames.
FRAME = 0.02

STATE_NUMBERS = {
    "CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8,
    "CS_RESET": 9, "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12,
}  # fmt: skip


def now_us() -> int:
    return int(time.time() * 1_000_000)


@dataclass
class Times:
    """Channel timetable in microseconds since the epoch (0 = not happened)."""

    profile_created: int = 0
    created: int = 0
    answered: int = 0
    progress: int = 0
    progress_media: int = 0
    hungup: int = 0
    transferred: int = 0
    resurrected: int = 0
    bridged: int = 0
    last_hold: int = 0
    hold_accum: int = 0


#: The optional profile fields in header order: (header suffix, attribute, present only when
#: this other attribute is set too).
_OPTIONAL = (
    ("Username", "username", None),
    ("Dialplan", "dialplan", None),
    ("Caller-ID-Name", "caller_id_name", None),
    ("Caller-ID-Number", "caller_id_number", None),
    ("Orig-Caller-ID-Name", "orig_caller_id_name", "caller_id_name"),
    ("Orig-Caller-ID-Number", "orig_caller_id_number", "caller_id_number"),
    ("Callee-ID-Name", "callee_id_name", None),
    ("Callee-ID-Number", "callee_id_number", None),
    ("Network-Addr", "network_addr", None),
    ("ANI", "ani", None),
    ("ANI-II", "aniii", None),
    ("Destination-Number", "destination_number", None),
    ("Unique-ID", "uuid", None),
    ("Source", "source", None),
    ("Transfer-Source", "transfer_source", None),
    ("Context", "context", None),
    ("RDNIS", "rdnis", None),
    ("Channel-Name", "chan_name", None),
    ("Profile-Index", "profile_index", None),
)
_OPTIONAL_ATTRS = tuple(attr for _, attr, _ in _OPTIONAL)
_OPTIONAL_WHEN = tuple(when for _, _, when in _OPTIONAL)
_TIMES = (
    "Profile-Created-Time", "Channel-Created-Time", "Channel-Answered-Time",
    "Channel-Progress-Time", "Channel-Progress-Media-Time", "Channel-Hangup-Time",
    "Channel-Transfer-Time", "Channel-Resurrect-Time", "Channel-Bridged-Time",
    "Channel-Last-Hold", "Channel-Hold-Accum",
)  # fmt: skip
_FLAGS = ("Screen-Bit", "Privacy-Hide-Name", "Privacy-Hide-Number")


@lru_cache(maxsize=16)
def _profile_header_names(prefix: str) -> tuple[str, ...]:
    """Every header name a profile's data can have with ``prefix``, in order."""
    suffixes = ("Direction", "Logical-Direction", *(s for s, _, _ in _OPTIONAL), *_TIMES, *_FLAGS)
    return tuple(f"{prefix}-{suffix}" for suffix in suffixes)


@dataclass
class CallerProfile:
    """switch_caller_profile_t: who calls whom, as event headers show it."""

    direction: str = "inbound"
    logical_direction: str = "inbound"
    username: str = ""
    dialplan: str = "xml"
    caller_id_name: str = ""
    caller_id_number: str = ""
    orig_caller_id_name: str = ""
    orig_caller_id_number: str = ""
    callee_id_name: str = ""
    callee_id_number: str = ""
    network_addr: str = ""
    ani: str = ""
    aniii: str = ""
    destination_number: str = ""
    uuid: str = ""
    source: str = ""
    transfer_source: str = ""
    context: str = "default"
    rdnis: str = ""
    chan_name: str = ""
    profile_index: str = ""
    times: Times = field(default_factory=Times)
    screen: bool = True
    hide_name: bool = False
    hide_number: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name != "_headers_cache":
            object.__setattr__(self, "_headers_cache", {})  # a field changed: rebuild

    def event_data(self, prefix: str) -> list[tuple[str, Value]]:
        """switch_caller_profile_event_set_data: headers with ``prefix`` (Caller, Other-Leg).
        Made once until a field or a time changes (every event of a channel carries them);
        callers must not modify the list."""
        cache = self.__dict__.get("_headers_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_headers_cache", cache)
        times = tuple(self.times.__dict__.values())
        hit = cache.get(prefix)
        if hit is not None and hit[0] == times:
            return hit[1]
        out = self._event_data(prefix)
        cache[prefix] = (times, out)
        return out

    def _event_data(self, prefix: str) -> list[tuple[str, Value]]:
        names = _profile_header_names(prefix)
        out: list[tuple[str, Value]] = [
            (names[0], self.direction),
            (names[1], self.logical_direction),
        ]
        get = self.__dict__.get
        for name, attr, when in zip(names[2:], _OPTIONAL_ATTRS, _OPTIONAL_WHEN, strict=False):
            value = get(attr)
            if value and (when is None or get(when)):
                out.append((name, value))
        t = self.times
        times = names[2 + len(_OPTIONAL_ATTRS) :]
        for name, value in zip(
            times,
            (
                t.profile_created, t.created, t.answered, t.progress, t.progress_media,
                t.hungup, t.transferred, t.resurrected, t.bridged, t.last_hold, t.hold_accum,
            ),
            strict=False,
        ):  # fmt: skip
            out.append((name, str(value)))
        flags = names[-3:]
        out.append((flags[0], "true" if self.screen else "false"))
        out.append((flags[1], "true" if self.hide_name else "false"))
        out.append((flags[2], "true" if self.hide_number else "false"))
        return out

    def clone(self) -> CallerProfile:
        """A snapshot (times copied, profile index dropped, as on another channel's events)."""
        # every field is a str, bool or int but the times: a shallow copy with its own times
        # and no headers cache (a deepcopy copied the cached header lists too)
        p = object.__new__(CallerProfile)
        state = dict(self.__dict__)
        state["times"] = copy.copy(self.times)
        state["profile_index"] = ""
        state["_headers_cache"] = {}
        p.__dict__.update(state)
        return p


@dataclass
class Command:
    """A queued ``sendmsg``: its headers (case-insensitive lookup) and body."""

    headers: list[tuple[str, str]]
    body: str | None = None

    def get(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None


Hook = Callable[["Channel", str, str | None], None]


class Channel:
    """One call leg. Created by the stand-in for callers, agent legs and loopback B legs."""

    def __init__(
        self,
        fs: Switch,
        *,
        name: str,
        direction: str,
        profile: CallerProfile,
        uuid: str | None = None,
        role: str = "leg",
    ) -> None:
        self.fs = fs
        self.uuid = uuid or str(uuidlib.uuid4())
        self.name = name
        self.direction = direction
        self.role = role
        self.profile = profile
        profile.uuid = self.uuid
        profile.chan_name = name
        ts = now_us()
        profile.times.created = profile.times.created or ts
        profile.times.profile_created = profile.times.profile_created or ts
        self.vars = VarStore()
        self.state = "CS_NEW"
        self.running_state = "CS_NEW"
        self.callstate = "DOWN"
        self.flags: set[str] = set()
        self.hangup_cause: str | None = None
        self.originator: CallerProfile | None = None
        self.originatee: CallerProfile | None = None
        self.last_profile_type: str | None = None
        self.private_queue: deque[Command] = deque()
        self.dtmf_queue: deque[tuple[str, int, str]] = deque()
        self.dtmf_log: list[str] = []
        self.app_log: list[tuple[str, str | None]] = []
        self.sig = gevent.event.Event()
        self.greenlet: gevent.Greenlet | None = None
        self.listeners: list = []
        self.hooks: list[Hook] = []
        self.log: list[tuple[float, str, str]] = []
        self.heard: list[tuple[str, object]] = []
        self.recordings: dict[str, float] = {}
        self.hungup = gevent.event.Event()
        self.destroyed = gevent.event.Event()
        self.session_id = fs.next_session_id()
        self.stack_depth = 0
        self.extension: list[tuple[str, str | None]] = []
        self.call = None  # the Call handle for callers
        self.leg = None  # the Leg handle for agent legs
        self.eavesdrop: dict | None = None  # while it runs eavesdrop (apps.app_eavesdrop)
        self.originating: Channel | None = None  # the caller that dialled this leg
        self.pending_extension: str | None = None
        self.pending_dialplan: str | None = None
        self.exported: dict[str, str | None] = {}
        self._hangup_external = False
        self._settled = False
        self.tick_origin = time.time()

    # --- basics -------------------------------------------------------------------------

    def note(self, what: str, detail: str = "") -> None:
        """Append to this channel's log (for tests and debugging)."""
        self.log.append((time.time(), what, detail))

    def kick(self) -> None:
        """Wake the session greenlet so it re-checks its conditions."""
        self.sig.set()

    def next_tick(self) -> None:
        """Sleep until this channel's next media tick (``fs.tick`` apart, from its creation).

        A real channel's session thread reads a frame per tick and only then looks at what
        was queued for it, so whatever a controller sends runs at the next tick. Costs nothing
        while the channel sleeps: there is no timer per channel, only this sleep on waking.
        """
        tick = self.fs.tick
        if tick <= 0:
            return
        now = time.time()
        ticks = math.floor((now - self.tick_origin) / tick) + 1
        gevent.sleep(max(self.tick_origin + ticks * tick - now, 0.0))

    def wait_frame(self, timeout: float | None = None) -> bool:
        """``sig.wait`` of a media loop: woken (or timed out), carry on at the next tick."""
        woken = self.sig.wait(timeout)
        self.next_tick()
        return bool(woken)

    def get_var(self, name: str) -> str | None:
        return self.vars.get(name)

    def set_var(self, name: str, value: str | None) -> None:
        self.vars.set(name, value)

    def set_partner_var(self, name: str, value: str) -> None:
        """switch_channel_set_variable_partner: on the channel our signal bond points to."""
        partner = self.partner_uuid()
        if partner and (other := self.fs.locate(partner)) is not None:
            other.set_var(name, value)

    def partner_uuid(self) -> str | None:
        return self.get_var("signal_bond") or self.get_var("originate_signal_bond")

    @property
    def answered(self) -> bool:
        return "ANSWERED" in self.flags

    @property
    def early(self) -> bool:
        return "EARLY_MEDIA" in self.flags

    def up(self) -> bool:
        return STATE_NUMBERS[self.state] < STATE_NUMBERS["CS_HANGUP"]

    def down(self) -> bool:
        return not self.up()

    def ready(self) -> bool:
        """switch_channel_ready: not hung up, past routing, not reset/transferring."""
        n = STATE_NUMBERS[self.state]
        return (
            self.hangup_cause is None
            and STATE_NUMBERS["CS_ROUTING"] < n < STATE_NUMBERS["CS_HANGUP"]
            and self.state != "CS_RESET"
            and "TRANSFER" not in self.flags
            and "NOT_READY" not in self.flags
        )

    def alive(self) -> bool:
        """``ready()`` for the session greenlet; lets a foreign hangup's events go out first.

        When another greenlet hung the channel up, FreeSWITCH's session thread only notices it
        on its next 20 ms frame; the controller therefore gets CHANNEL_HANGUP (and a lingering
        socket its disconnect notice) before the rest of the hangup's events.
        """
        if self.ready():
            return True
        if self._hangup_external and not self._settled:
            self._settled = True
            gevent.sleep(FRAME)
        return False

    # --- events -------------------------------------------------------------------------

    def basic_data(self) -> list[tuple[str, Value]]:
        """switch_channel_event_set_basic_data."""
        inbound = self.direction == "inbound"
        out: list[tuple[str, Value]] = [
            ("Channel-State", self.running_state),
            ("Channel-Call-State", self.callstate),
            ("Channel-State-Number", str(STATE_NUMBERS[self.state])),
            ("Channel-Name", self.name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", self.direction),
            ("Presence-Call-Direction", self.direction),
            ("Channel-HIT-Dialplan", "true" if inbound or "DIALPLAN" in self.flags else "false"),
        ]
        if v := self.get_var("presence_id"):
            out.append(("Channel-Presence-ID", v))
        if v := self.get_var("presence_data"):
            out.append(("Channel-Presence-Data", v))
        out.append(("Channel-Call-UUID", self.get_var("call_uuid") or self.uuid))
        if self.down():
            answer_state = "hangup"
        elif self.answered:
            answer_state = "answered"
        elif self.early:
            answer_state = "early"
        else:
            answer_state = "ringing"
        out.append(("Answer-State", answer_state))
        if self.hangup_cause:
            out.append(("Hangup-Cause", self.hangup_cause))
        for d in ("Read", "Write"):
            out.append((f"Channel-{d}-Codec-Name", "L16"))
            out.append((f"Channel-{d}-Codec-Rate", "8000"))
            out.append((f"Channel-{d}-Codec-Bit-Rate", "128000"))
        out.extend(self.profile.event_data("Caller"))
        if self.last_profile_type == "originator" and self.originator is not None:
            out.append(("Other-Type", "originator"))
            out.extend(self.originator.event_data("Other-Leg"))
        elif self.last_profile_type == "originatee" and self.originatee is not None:
            out.append(("Other-Type", "originatee"))
            out.extend(self.originatee.event_data("Other-Leg"))
        return out

    def variable_headers(self) -> list[tuple[str, Value]]:
        return self.vars.headers()

    def build_event(
        self,
        name: str,
        before: Iterable[tuple[str, Value]] = (),
        after: Iterable[tuple[str, Value]] = (),
        body: str | None = None,
    ) -> Event:
        hs = core_headers(self.fs, name)
        hs.extend((k, v) for k, v in before if v is not None and v != "")
        hs.extend(self.basic_data())
        if name in EXTENDED:
            hs.extend(self.variable_headers())
        hs.extend((k, v) for k, v in after if v is not None and v != "")
        return Event(name, hs, body)

    def fire(
        self,
        name: str,
        before: Iterable[tuple[str, Value]] = (),
        after: Iterable[tuple[str, Value]] = (),
        body: str | None = None,
    ) -> None:
        """Build an event with this channel's data and deliver it to every listener (not
        built when no listener subscribed to its name)."""
        if not self.fs.bus.wanted(name, self.uuid):
            self.fs.next_sequence()
            return
        self.fs.bus.dispatch(self.build_event(name, before, after, body))

    def set_running_state(self, state: str) -> None:
        """The session thread entering ``state``: CHANNEL_STATE event."""
        self.running_state = state
        self.fire("CHANNEL_STATE")

    def _hook(self, what: str, detail: str | None = None) -> None:
        for hook in list(self.hooks):
            hook(self, what, detail)

    # --- call progress ------------------------------------------------------------------

    def mark_ring_ready(self) -> None:
        if "RING_READY" in self.flags or self.answered or self.down():
            return
        self.flags.add("RING_READY")
        self.profile.times.progress = self.profile.times.progress or now_us()
        other = self.originating
        if other is not None and not other.profile.times.progress:
            other.profile.times.progress = self.profile.times.progress
        self.note("ring_ready")
        self.fire("CHANNEL_PROGRESS")
        if self.callstate in ("DOWN", "DIALING"):
            self.callstate = "RINGING"
        self._hook("ring")
        self.kick()

    def mark_pre_answered(self) -> None:
        if self.early or self.answered or self.down():
            return
        self.flags.add("EARLY_MEDIA")
        self.profile.times.progress_media = self.profile.times.progress_media or now_us()
        other = self.originating
        if other is not None and not other.profile.times.progress_media:
            other.profile.times.progress_media = self.profile.times.progress_media
        self.note("early_media")
        self.fire("CHANNEL_PROGRESS_MEDIA")
        self.callstate = "EARLY"
        self._hook("early")
        self.kick()

    def mark_answered(self) -> None:
        if self.answered or self.down():
            return
        self.flags.add("ANSWERED")
        self.profile.times.answered = now_us()
        self.note("answered")
        self.fire("CHANNEL_ANSWER")
        self.callstate = "ACTIVE"
        self._hook("answer")
        self.kick()

    def answer(self) -> None:
        """switch_channel_answer (the ``answer`` application)."""
        if self.answered or self.down():
            return
        self.mark_answered()
        self.set_var("endpoint_disposition", "ANSWER")

    def pre_answer(self) -> None:
        if self.answered or self.early or self.down():
            return
        self.set_var("endpoint_disposition", "EARLY MEDIA")  # before PROGRESS_MEDIA fires
        self.mark_pre_answered()

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """switch_channel_perform_hangup: CHANNEL_HANGUP now, the rest in the session."""
        if "HANGUP_CALLED" in self.flags:
            return
        self.flags.add("HANGUP_CALLED")
        if self.down():
            return
        self.state = "CS_HANGUP"
        self.hangup_cause = cause
        self._hangup_external = gevent.getcurrent() is not self.greenlet
        self.note("hangup", cause)
        self.set_partner_var("last_bridge_hangup_cause", cause)
        if "BRIDGE_ORIGINATOR" in self.flags:
            self.set_var("last_bridge_role", "originator")
        elif "BRIDGED" in self.flags:
            self.set_var("last_bridge_role", "originatee")
        self.fire("CHANNEL_HANGUP")
        self.hungup.set()
        self._hook("hangup", cause)
        self.kick()

    # --- session --------------------------------------------------------------------------

    def start(self, script: Callable[[Channel], None]) -> gevent.Greenlet:
        """Run ``script`` as this channel's session, then its hangup and reporting states."""

        def main() -> None:
            try:
                script(self)
            except gevent.GreenletExit:
                raise
            except Exception as exc:  # a bug in the stand-in must not leave a zombie channel
                self.note("error", repr(exc))
                self.fs.errors.append((self.uuid, exc))
                if self.up():
                    self.hangup("CRASH")
            self.alive()
            self.finish()

        self.greenlet = gevent.spawn(main)
        return self.greenlet

    def wait_down(self) -> None:
        """Session script body for channels driven from outside (agent legs)."""
        while True:
            self.sig.clear()
            if self.down():
                return
            self.sig.wait()

    def finish(self) -> None:
        """CS_HANGUP and CS_REPORTING processing, then destroy once sockets let go."""
        if self.up():
            self.hangup("NORMAL_CLEARING")
        self.set_running_state("CS_HANGUP")
        self.hangup_state()
        self.state = "CS_REPORTING"
        self.set_running_state("CS_REPORTING")
        self.fire("CHANNEL_HANGUP_COMPLETE", before=[("Hangup-Cause", self.hangup_cause or "")])
        for listener in list(self.listeners):
            listener.finished.wait()
        self.state = "CS_DESTROY"
        self.set_running_state("CS_DESTROY")
        self.fire("CHANNEL_DESTROY")
        self.fs.remove_channel(self)
        self.destroyed.set()

    def hangup_state(self) -> None:
        """switch_core_session_hangup_state: endpoint hangup handlers, stop recordings,
        hangup vars, CDR timestamps."""
        self._hook("hangup_state", self.hangup_cause)
        self.profile.times.hungup = now_us()
        for path in list(self.recordings):
            self.stop_recording(path)
        cause = self.hangup_cause or "NORMAL_CLEARING"
        self.set_var("hangup_cause", cause)
        self.set_var("hangup_cause_q850", str(q850(cause)))
        self.set_timestamps()
        self.callstate = "HANGUP"
        if self.name.startswith("loopback/"):
            self.set_var("is_loopback", "1")

    def set_timestamps(self) -> None:
        """switch_channel_set_timestamps: the CDR variables of CHANNEL_HANGUP_COMPLETE."""
        t = self.profile.times
        self.set_var("digits_dialed", "".join(self.dtmf_log) or "none")

        def stamp(us: int) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us / 1e6))

        self.set_var("start_stamp", stamp(t.created))
        self.set_var("profile_start_stamp", stamp(t.profile_created))
        for name, us in (
            ("answer_stamp", t.answered),
            ("bridge_stamp", t.bridged),
            ("hold_stamp", t.last_hold),
            ("resurrect_stamp", t.resurrected),
            ("progress_stamp", t.progress),
            ("progress_media_stamp", t.progress_media),
        ):
            if us:
                self.set_var(name, stamp(us))
        self.set_var("end_stamp", stamp(t.hungup))
        for name, us in (
            ("start", t.created),
            ("profile_start", t.profile_created),
            ("answer", t.answered),
            ("bridge", t.bridged),
            ("last_hold", t.last_hold),
        ):
            self.set_var(f"{name}_epoch", str(us // 1_000_000))
            self.set_var(f"{name}_uepoch", str(us))
        self.set_var("hold_accum_seconds", str(t.hold_accum // 1_000_000))
        self.set_var("hold_accum_usec", str(t.hold_accum))
        self.set_var("hold_accum_ms", str(t.hold_accum // 1000))
        for name, us in (
            ("resurrect", t.resurrected),
            ("progress", t.progress),
            ("progress_media", t.progress_media),
            ("end", t.hungup),
        ):
            self.set_var(f"{name}_epoch", str(us // 1_000_000))
            self.set_var(f"{name}_uepoch", str(us))
        if self.app_log:
            last_app, last_arg = self.app_log[-1]
            self.set_var("last_app", last_app)
            self.set_var("last_arg", last_arg)
        p = self.profile
        cid = f'"{p.caller_id_name}" <{p.caller_id_number}>' if p.caller_id_name else None
        self.set_var("caller_id", cid or p.caller_id_number)

        def span(a: int, b: int, unit: int) -> int:
            """FreeSWITCH subtracts truncated times: (a // unit) - (b // unit)."""
            return a // unit - b // unit if a and b else 0

        answered = bool(t.answered)
        bridged = t.bridged > t.created
        pairs = (
            ("duration", t.hungup, t.created, True),
            ("bill", t.hungup, t.answered, answered),
            ("progress", t.progress, t.created, bool(t.progress)),
            ("answer", t.answered, t.created, answered),
            ("wait", t.bridged, t.created, bridged),
            ("progress_media", t.progress_media, t.created, bool(t.progress_media)),
            ("flow_bill", t.hungup, t.created, answered),
        )
        for unit, div in (("sec", 1_000_000), ("msec", 1000), ("usec", 1)):
            for name, a, b, valid in pairs:
                if name == "duration":
                    key = {"sec": "duration", "msec": "mduration", "usec": "uduration"}[unit]
                else:
                    key = name + unit
                self.set_var(key, str(max(span(a, b, div), 0) if valid else 0))

    def flip_cid(self) -> None:
        """switch_channel_flip_cid: an originated channel now shows the callee as caller."""
        p = self.profile
        old_name, old_number = p.caller_id_name, p.caller_id_number
        if p.callee_id_name:
            self.set_var("pre_transfer_caller_id_name", p.caller_id_name)
            p.caller_id_name = p.callee_id_name
        p.callee_id_name = "" if "BRIDGED" in self.flags else old_name
        if p.callee_id_number:
            self.set_var("pre_transfer_caller_id_number", p.caller_id_number)
            p.caller_id_number = p.callee_id_number
        p.callee_id_number = "" if "BRIDGED" in self.flags else old_number
        self.set_var("channel_cid_flipped", "yes")
        before = [("Direction", "RECV"), ("Bridged-To", self.partner_uuid() or "")]
        self.fire("CALL_UPDATE", before=before)

    # --- recordings ----------------------------------------------------------------------

    def start_recording(self, path: str) -> None:
        if not path.startswith("/"):
            # switch_ivr_record_session: a relative file goes under the channel's
            # sound_prefix (the stock vars.xml: the sounds directory), not the recordings one
            prefix = self.get_var("sound_prefix") or self.fs.sounds_dir
            path = f"{prefix.rstrip('/')}/{path}"
        directory = path.rsplit("/", 1)[0]
        if any(directory == d or directory.startswith(d.rstrip("/") + "/")
               for d in self.fs.unwritable):  # fmt: skip
            # switch_ivr_record_session: the file cannot be opened, no RECORD_START
            self.note("log_error", f"Error opening {path}")
            return
        self.recordings[path] = time.time()
        self.note("record_start", path)
        self.fire("RECORD_START", after=[("Record-File-Path", path)])

    def stop_recording(self, path: str) -> bool:
        started = self.recordings.pop(path, None)
        if started is None:
            return False
        ms = int((time.time() - started) * 1000)
        samples = ms * 8
        self.set_var("record_file_size", str(44 + samples * 2))
        self.set_var("record_samples", str(samples))
        self.set_var("record_seconds", str(ms // 1000))
        self.set_var("record_ms", str(ms))
        self.set_var("record_completion_cause", "success-maxtime")
        self.note("record_stop", path)
        self.fire("RECORD_STOP", after=[("Record-File-Path", path)])
        if self.call is not None:
            self.call.recordings.append((path, started, time.time()))
        return True

    # --- private events (sendmsg) --------------------------------------------------------

    def queue_private(self, cmd: Command) -> None:
        self.private_queue.append(cmd)
        self.kick()

    def dequeue_private(self) -> Command | None:
        if "EVENT_LOCK" in self.flags or not self.private_queue:
            return None
        return self.private_queue.popleft()

    def private_count(self) -> int:
        return 0 if "EVENT_LOCK" in self.flags else len(self.private_queue)

    # --- DTMF --------------------------------------------------------------------------------

    def queue_dtmf(self, digits: str, duration: int = 2000, source: str = "RTP") -> None:
        for d in digits:
            if d in "0123456789*#ABCDabcdwW":
                self.dtmf_queue.append((d.upper(), duration, source))
        self.note("dtmf_in", digits)
        self.kick()
        self._hook("dtmf", digits)  # a bridge reads the agent's keys from the caller's loop

    def has_dtmf(self) -> bool:
        return bool(self.dtmf_queue)

    def dequeue_dtmf(self) -> str | None:
        """Take one digit: DTMF event (FreeSWITCH reports a digit when it is read)."""
        if not self.dtmf_queue:
            return None
        digit, duration, source = self.dtmf_queue.popleft()
        self.dtmf_log.append(digit)
        self.fire(
            "DTMF",
            after=[
                ("DTMF-Digit", digit),
                ("DTMF-Duration", str(duration)),
                ("DTMF-Source", source),
            ],
        )
        return digit

    # --- what the caller hears -----------------------------------------------------------

    def hear(self, kind: str, detail: object | None = None) -> None:
        """Record a change of what this channel's party hears (``Call.heard``)."""
        if detail is None and self.heard and self.heard[-1][0] == kind:
            return
        entry = (kind, detail if detail is not None else time.time())
        self.heard.append(entry)
        self.note("hears", kind)
