"""FakeFreeSwitch: the stand-in as a whole (channels, event bus, sockets, phones, api)."""

from __future__ import annotations

import socket
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.server import StreamServer

# importing bridge and outbound registers their applications (bridge, socket) in apps.APPS
from . import bridge, outbound  # noqa: F401
from .api import Api
from .bus import EventBus
from .calls import AfterSocket, Call, place_call
from .channel import Channel
from .eventheaders import make_event
from .listener import Listener
from .phones import Leg, PhoneBehaviour, PhoneRegistry

#: Modules ``module_exists`` finds by default: what fsacd's test dialplan needs.
DEFAULT_MODULES = frozenset(
    "mod_event_socket mod_commands mod_dptools mod_dialplan_xml mod_loopback mod_sofia "
    "mod_sndfile mod_local_stream mod_tone_stream mod_say_en".split()
)


class FakeFreeSwitch:
    """A FreeSWITCH stand-in speaking the event-socket protocol (see package docstring)."""

    def __init__(
        self,
        socket_target: tuple[str, int] = ("127.0.0.1", 8084),
        inbound: tuple[str, int] | None = ("127.0.0.1", 0),
        password: str = "ClueCon",
        *,
        socket_arg: str = "async full",
        hostname: str | None = None,
        ipv4: str = "127.0.0.1",
        ipv6: str = "::1",
        core_uuid: str | None = None,
        heartbeat_interval: float | None = 20.0,
        default_phone: PhoneBehaviour | None = None,
        media_durations: dict[str, float | None] | None = None,
        default_file_duration: float = 0.2,
        dialplan_after_socket: AfterSocket = None,
        extensions: dict[str, list[tuple[str, str | None]]] | None = None,
        connect_timeout: float = 5.0,
        tick: float = 0.02,
        first_tick: float | None = None,
    ) -> None:
        self.socket_target = socket_target
        self.inbound = inbound
        self.password = password
        self.socket_arg = socket_arg
        self.hostname = hostname or socket.gethostname()
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.core_uuid = core_uuid or str(uuidlib.uuid4())
        self.heartbeat_interval = heartbeat_interval
        self.media_durations = dict(media_durations or {})
        self.default_file_duration = default_file_duration
        self.dialplan_after_socket = dialplan_after_socket
        self.extensions = dict(extensions or {})
        self.connect_timeout = connect_timeout
        #: the media clock: a channel runs what it was sent at its next tick (FreeSWITCH: 20 ms)
        self.tick = tick
        #: FreeSWITCH's $${recordings_dir} and $${sounds_dir} (global_getvar)
        self.recordings_dir = "/var/lib/freeswitch/recordings"
        self.sounds_dir = "/usr/share/freeswitch/sounds"
        #: what ``module_exists`` / ``file_exists`` / ``local_stream show`` find (fsacd doctor)
        self.modules: set[str] = set(DEFAULT_MODULES)
        self.files: set[str] = {self.recordings_dir, self.sounds_dir}
        self.local_streams: dict[str, str] = {"moh": f"{self.sounds_dir}/music/8000"}
        #: directories where a recording cannot be opened (a permission problem)
        self.unwritable: set[str] = set()
        #: seconds from ``connect`` to the socket channel's first tick (None: one tick); the
        #: phase is arbitrary on a real switch, the transcript replay sets the recorded one
        self.first_tick = first_tick
        self.phones = PhoneRegistry(default_phone or PhoneBehaviour.unregistered())
        self.bus = EventBus()
        self.api = Api(self)
        self.all_channels: dict[str, Channel] = {}
        self.legs: list[Leg] = []
        self.calls: list[Call] = []
        self.listeners: list[Listener] = []
        self.errors: list[tuple[str, BaseException]] = []
        self.started_at = time.time()
        self.session_count = 0
        self.peak = 0
        self._sequence = 0
        self._greenlets: list[gevent.Greenlet] = []
        self._prune_at = 64
        self._server: StreamServer | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeFreeSwitch:
        self.started_at = time.time()
        if self.inbound is not None:
            self._server = StreamServer(self.inbound, self._accept)
            self._server.start()
        if self.heartbeat_interval:
            self.spawn(self._heartbeat)
        return self

    def stop(self) -> None:
        """Hang up what is still up, close every connection and stop the servers."""
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None
        for ch in list(self.all_channels.values()):
            if ch.up():
                ch.hangup("SYSTEM_SHUTDOWN")
        for listener in list(self.listeners):
            listener.close()
        gevent.sleep(0.05)
        for ch in list(self.all_channels.values()):
            if ch.greenlet is not None:
                ch.greenlet.kill(block=False)
        for listener in list(self.listeners):
            for g in (listener.greenlet, listener.reader):
                if g is not None and g is not gevent.getcurrent():
                    g.kill(block=False)
            if listener.sock is not None:
                listener.sock.close()
                listener.sock = None
        for g in self._greenlets:
            g.kill(block=False)

    def __enter__(self) -> FakeFreeSwitch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def inbound_address(self) -> tuple[str, int] | None:
        if self._server is None:
            return None
        host, port = self._server.address[:2]
        return host, port

    def _accept(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener = Listener(self, sock)
        listener.start(inline=True)

    def _heartbeat(self) -> None:
        assert self.heartbeat_interval
        while True:
            gevent.sleep(self.heartbeat_interval)
            self.fire_heartbeat()

    def fire_heartbeat(self) -> None:
        up = time.time() - self.started_at
        secs = int(up)
        parts = [
            (secs // (365 * 86400), "year"),
            (secs // 86400 % 365, "day"),
            (secs // 3600 % 24, "hour"),
            (secs // 60 % 60, "minute"),
            (secs % 60, "second"),
            (int(up * 1000) % 1000, "millisecond"),
            (int(up * 1_000_000) % 1000, "microsecond"),
        ]
        uptime = ", ".join(f"{n} {w}{'' if n == 1 else 's'}" for n, w in parts)
        live = len(self.channels)
        ev = make_event(
            self,
            "HEARTBEAT",
            [
                ("Event-Info", "System Ready"),
                ("Up-Time", uptime),
                ("FreeSWITCH-Version", "1.11.1-release~64bit"),
                ("Uptime-msec", str(int(up * 1000))),
                ("Session-Count", str(live)),
                ("Max-Sessions", "2000"),
                ("Session-Per-Sec", "0"),
                ("Session-Per-Sec-Last", "0"),
                ("Session-Per-Sec-Max", "0"),
                ("Session-Per-Sec-FiveMin", "0"),
                ("Session-Since-Startup", str(self.session_count)),
                ("Session-Peak-Max", str(self.peak)),
                ("Session-Peak-FiveMin", str(self.peak)),
                ("Idle-CPU", "99.000000"),
            ],
        )
        self.bus.dispatch(ev)

    # --- bookkeeping ------------------------------------------------------------------------

    def spawn(self, func: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        g = gevent.spawn(func, *args)
        if len(self._greenlets) >= self._prune_at:  # the dead ones forgotten now and then
            self._greenlets = [x for x in self._greenlets if not x.dead]
            self._prune_at = max(64, 2 * len(self._greenlets))
        self._greenlets.append(g)
        return g

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def next_session_id(self) -> int:
        self.session_count += 1
        return self.session_count

    def add_channel(self, ch: Channel) -> None:
        self.all_channels[ch.uuid] = ch
        if len(self.all_channels) > self.peak:  # else the live ones cannot exceed the peak
            self.peak = max(self.peak, len(self.channels))

    def remove_channel(self, ch: Channel) -> None:
        if self.all_channels.get(ch.uuid) is ch:
            del self.all_channels[ch.uuid]

    def locate(self, uid: str | None) -> Channel | None:
        """switch_core_session_locate: only channels that are not hung up."""
        ch = self.all_channels.get(uid or "")
        return ch if ch is not None and ch.up() else None

    @property
    def channels(self) -> dict[str, Channel]:
        """Live (not hung up) channels by uuid."""
        return {u: c for u, c in self.all_channels.items() if c.up()}

    def route(self, ch: Channel, exten: str) -> list[tuple[str, str | None]] | None:
        """The "dialplan": ``extensions`` first, then the socket extension of callers."""
        if exten in self.extensions:
            return list(self.extensions[exten])
        if ch.call is not None and exten == ch.call.destination:
            host, port = self.socket_target
            return [("socket", f"{host}:{port} {self.socket_arg}".rstrip())]
        return None

    # --- driving ----------------------------------------------------------------------------

    def place_call(
        self,
        destination: str = "5000",
        caller_number: str = "+4922129191999",
        caller_name: str = "Erika Muster",
        variables: dict[str, str] | Iterable[tuple[str, str]] | None = None,
        hangup_after: float | None = None,
        dtmf: Iterable[tuple[float, str]] = (),
        dialplan_after_socket: AfterSocket = None,
        **kwargs: Any,
    ) -> Call:
        """A new caller; its dialplan runs ``socket <socket_target> async full``."""
        return place_call(
            self, destination, caller_number, caller_name, variables, hangup_after, dtmf,
            dialplan_after_socket, **kwargs,
        )  # fmt: skip

    def execute_api(self, line: str) -> str:
        """Run ``"uuid_kill <uuid>"``-style API commands in-process."""
        name, _, arg = line.partition(" ")
        return self.api.run(name, arg or None)

    def leg(self, endpoint: str) -> Leg | None:
        """The most recent leg dialled to ``endpoint``."""
        for leg in reversed(self.legs):
            if leg.endpoint == endpoint:
                return leg
        return None
