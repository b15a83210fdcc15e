"""greenswitch 0.0.19, hardened: own reader, timeouts, FIFO replies, safe commands.

The classes subclass greenswitch's ``OutboundSession`` and ``InboundESL`` but replace their
I/O: greenswitch's reader and event processor greenlets are never started. Instead one reader
greenlet per connection runs ``sock.recv()`` into a :class:`~fsacd.esl.framing.FrameReader`:

- lines are split before values are URL-decoded (``%0A`` stays inside its header);
- a frame cut short by EOF, a frame without ``Content-Type``, garbage or an unsolicited reply
  drop that connection only; waiting commands fail with :class:`ESLDisconnected`, the event
  queue gets a ``SOCKET_CLOSED`` event; nothing escapes the reader greenlet;
- every command is written and its reply awaited under one lock with a timeout; a timed-out
  command closes the connection (later replies would be out of step);
- ``execute`` always sends ``event-lock: true`` (unless asked not to), an ``event-uuid`` and
  its argument as a body; no command or header may contain CR or LF.

Logs name a call by its channel uuid only, never by caller number or name.
"""

from __future__ import annotations

import logging
import traceback
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

import gevent
import gevent.lock
import gevent.queue
import gevent.socket
import greenswitch.esl as gs
from gevent.event import AsyncResult
from gevent.event import Event as GEvent

from .framing import (
    MAX_BODY_BYTES,
    OUTBOUND_MAX_BODY_BYTES,
    ChannelData,
    Event,
    Frame,
    FrameReader,
    FramingError,
    encode_command,
    encode_execute,
    frame_event,
    url_decode,
)
from .mailbox import Mailbox

log = logging.getLogger("fsacd.esl")

#: Inbound addresses whose refused password was logged (a warning once, until a login works):
#: the controller's connections retry with backoff and would repeat it on every try.
_AUTH_REPORTED: set[tuple[str, int]] = set()


def report_connect_error(
    logger: logging.Logger, prefix: str, address: tuple[str, int], exc: Exception
) -> None:
    """Log why an inbound connection failed; a refused password once per address (debug after)
    until a connection to it authenticates again."""
    if isinstance(exc, AuthError):
        if tuple(address) in _AUTH_REPORTED:
            logger.debug("%sFreeSWITCH inbound %s:%d: %s", prefix, *address, exc)
            return
        _AUTH_REPORTED.add((address[0], address[1]))
    logger.warning("%sFreeSWITCH inbound %s:%d: %s", prefix, *address, exc)

RECV_SIZE = 65536
#: Events kept for a consumer that does not read them; the oldest are dropped beyond this.
MAX_QUEUED_EVENTS = 10000
#: BACKGROUND_JOB results kept for a bgapi whose reply and job event raced.
MAX_UNCLAIMED_JOBS = 256
_REPLY_TYPES = ("command/reply", "api/response")


class ESLError(Exception):
    """Base class of the errors of this module."""


class ESLTimeout(ESLError):
    """A reply or another awaited frame did not come in time."""


class ESLDisconnected(ESLError, gs.OutboundSessionHasGoneAway, gs.NotConnectedError):
    """The connection is gone, closing or was closed (also a greenswitch error)."""


class CommandError(ESLError):
    """FreeSWITCH answered ``-ERR ...``; ``reply`` holds its text."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class AuthError(ESLError):
    """The inbound connection was refused (wrong password)."""


class _ProtocolError(Exception):
    """The peer broke the protocol; the message names no frame content."""


def _reply_text(frame: Frame) -> str:
    """The reply of a ``command/reply`` (URL-decoded) or the body of an ``api/response``."""
    if frame.content_type == "api/response":
        return frame.body.decode("utf-8", errors="replace")
    return url_decode(frame.headers.get("Reply-Text", "")).strip()


def _safe_tb(exc: BaseException) -> str:
    """A traceback without the exception's message (which may carry call data)."""
    return "".join(traceback.format_tb(exc.__traceback__))


class _Hardened(gs.ESLProtocol):
    """The shared connection core: reader greenlet, reply matching, event queue."""

    _label = "esl"

    def _init_conn(self, command_timeout: float, max_body: int = MAX_BODY_BYTES) -> None:
        self.command_timeout = command_timeout
        self._frames = FrameReader(max_body=max_body)
        self._pending: list[AsyncResult] = []  # a list: a deque is 0.7 KiB per connection
        self._cmd_lock = gevent.lock.Semaphore()
        self._events: Mailbox[Event] = Mailbox()
        self._sink: Callable[[Event], None] | None = None
        #: sees the body of each ``text/event-plain`` frame first; False drops it unparsed
        self.event_filter: Callable[[bytes], bool] | None = None
        #: let the other greenlets run after each read (a connection whose events wake many
        #: of them: they take their events before the next read, instead of a burst's worth
        #: of parsed events piling up in their inboxes)
        self.yield_after_read = False
        self._dropped_events = 0
        self._reader: gevent.Greenlet | None = None
        self._closed = False
        self._disconnecting = False  # a disconnect notice came: the socket will close
        self._close_reason = ""
        self._closed_event: Event | None = None
        self._exec_waiters: dict[str, AsyncResult] = {}
        self._done = GEvent()

    # greenswitch assigns ``self.connected``; ours is computed.
    @property
    def connected(self) -> bool:
        """True while the socket is open and no disconnect notice came."""
        if getattr(self, "_reader", None) is None:
            return False
        return not (self._closed or self._disconnecting)

    @connected.setter
    def connected(self, value: bool) -> None:  # greenswitch's __init__ sets it; ignored
        pass

    # --- greenswitch entry points, redirected to the hardened path ------------------------

    def start_event_handlers(self) -> None:
        """Start our reader greenlet (never greenswitch's reader and processor)."""
        if self._reader is None:
            self._reader = gevent.spawn(self._read_loop)

    def receive_events(self) -> None:
        self._read_loop()

    def process_events(self) -> None:
        """Unused: events are delivered through :meth:`next_event`."""

    def send(self, data: str) -> Frame:
        """greenswitch's ``send``: a one-line command, with a timeout."""
        return self.send_command(data)

    def stop(self) -> None:
        self.close()

    # --- commands ---------------------------------------------------------------------------

    def send_command(
        self,
        command: str,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: str | bytes | None = None,
        timeout: float | None = None,
        *,
        check: bool = True,
    ) -> Frame:
        """Send one command and return its reply frame.

        Raises ValueError for CR/LF in the command or a header, :class:`ESLTimeout` (the
        connection is then closed), :class:`ESLDisconnected`, and with ``check``
        :class:`CommandError` for a ``-ERR`` command reply.
        """
        frame = self._request(encode_command(command, headers, body), timeout)
        if check and frame.content_type == "command/reply":
            text = _reply_text(frame)
            if text.startswith("-ERR"):
                raise CommandError(text)
        return frame

    def send_commands(
        self, commands: Iterable[str], timeout: float | None = None, *, check: bool = True
    ) -> list[Frame]:
        """Send several one-line commands in one write and return their replies, in order.

        FreeSWITCH reads and answers them one after the other: one round trip instead of one
        per command. With ``check`` a ``-ERR`` reply to any of them raises
        :class:`CommandError` (after all replies came, so the connection stays in step).
        """
        raws = [encode_command(c) for c in commands]
        if not raws:
            return []
        frames = self._request_many(raws, timeout)
        for frame in frames:
            if check and frame.content_type == "command/reply":
                text = _reply_text(frame)
                if text.startswith("-ERR"):
                    raise CommandError(text)
        return frames

    def _request(self, raw: bytes, timeout: float | None) -> Frame:
        """Write ``raw`` and wait for its reply, both under the command lock."""
        return self._request_many([raw], timeout)[0]

    def _request_many(self, raws: list[bytes], timeout: float | None) -> list[Frame]:
        """Write the commands ``raws`` at once and wait for their replies (one timeout for
        all), under the command lock."""
        timeout = self.command_timeout if timeout is None else timeout
        self._check_open()
        if not self._cmd_lock.acquire(timeout=timeout):
            raise ESLTimeout(f"{self._label}: another command held the connection for {timeout}s")
        try:
            self._check_open()
            results = [AsyncResult() for _ in raws]
            self._pending.extend(results)
            timer = gevent.Timeout(timeout)
            timer.start()
            written = False
            try:
                self.sock.sendall(raws[0] if len(raws) == 1 else b"".join(raws))
                written = True
                return [result.get() for result in results]
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
                self._shutdown("command timed out")
                raise ESLTimeout(f"{self._label}: no reply within {timeout}s") from None
            except OSError:
                self._shutdown("write failed")
                raise ESLDisconnected(f"{self._label}: write failed") from None
            finally:
                timer.close()
                if not written and not self._closed:
                    # interrupted mid-write (killed, or a caller's own Timeout): the stream
                    # may hold half a command. An interrupted wait is fine: the orphaned
                    # results still take their own replies, so later replies stay in step.
                    self._shutdown("interrupted write")
        finally:
            self._cmd_lock.release()

    def _check_open(self) -> None:
        if self._reader is None:
            raise ESLDisconnected(f"{self._label}: not connected")
        if self._closed or self._disconnecting:
            raise ESLDisconnected(f"{self._label}: {self._close_reason or 'disconnecting'}")

    # --- events -----------------------------------------------------------------------------

    def next_event(self, timeout: float | None) -> Event | None:
        """The next event, or None after ``timeout`` seconds.

        A disconnect notice is an event named ``DISCONNECT``; once the socket is closed and the
        queue is drained every call returns the ``SOCKET_CLOSED`` event at once.
        """
        if self._closed_event is not None and self._events.empty():
            return self._closed_event
        try:
            return self._events.get(timeout=timeout)
        except gevent.queue.Empty:
            return None

    def deliver_to(self, sink: Callable[[Event], None] | None) -> None:
        """Hand every event to ``sink`` (called in the reader greenlet, must not block)
        instead of queueing it for :meth:`next_event`: first those queued so far, then each
        as it comes, and last ``SOCKET_CLOSED`` once. A call's greenlet reads its events
        and its offers from one inbox this way, with no greenlet to forward them. None
        queues them again."""
        if sink is not None:
            while not self._events.empty():
                sink(self._events.get_nowait())
        self._sink = sink

    def _put_event(self, event: Event) -> None:
        if self._sink is not None:
            self._sink(event)
            return
        if self._events.qsize() >= MAX_QUEUED_EVENTS:
            try:
                self._events.get_nowait()
            except gevent.queue.Empty:
                pass
            self._dropped_events += 1
            if self._dropped_events in (1, 100) or self._dropped_events % 10000 == 0:
                log.warning("%s: event queue full, %d dropped", self._label, self._dropped_events)
        self._events.put(event)

    def _on_event(self, event: Event) -> None:
        """Sees each event before it is queued (every event is queued, waited for or not)."""
        if event.name == "CHANNEL_EXECUTE_COMPLETE":
            waiter = self._exec_waiters.pop(event.get("Application-UUID") or "", None)
            if waiter is not None:
                waiter.set(event)

    # --- reader -----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        """Read frames until EOF or error; never raises."""
        reason = "closed"
        try:
            while not self._closed:
                try:
                    data = self.sock.recv(RECV_SIZE)
                except OSError:
                    reason = "closed" if self._closed else "socket error"
                    break
                if not data:
                    reason = "end of stream inside a frame" if self._frames.pending else "eof"
                    break
                try:
                    for frame in self._frames.feed(data):
                        self._dispatch(frame)
                except (FramingError, _ProtocolError) as exc:
                    what = str(exc) if isinstance(exc, _ProtocolError) else "bad framing"
                    log.error("%s: protocol error (%s), dropping the connection", self._label, what)
                    reason = "protocol error"
                    break
                # nothing of the last read stays alive while the socket is idle (a waiting
                # caller's socket is idle for minutes; an event is a few KiB)
                data = frame = None
                if self.yield_after_read:
                    gevent.sleep(0)
        except gevent.GreenletExit:
            reason = "reader stopped"
        except Exception as exc:  # a bug: log it without the message, drop the connection
            log.error("%s: reader failed (%s)\n%s", self._label, type(exc).__name__, _safe_tb(exc))
            reason = "reader failed"
        finally:
            self._shutdown(reason)

    def _dispatch(self, frame: Frame) -> None:
        ct = frame.content_type
        if ct is None:
            raise _ProtocolError("frame without Content-Type")
        if ct in _REPLY_TYPES:
            if not self._pending:
                raise _ProtocolError(f"{ct} without a command")
            self._pending.pop(0).set(frame)
        elif ct in ("text/event-plain", "text/event-json"):
            if (
                self.event_filter is not None
                and ct == "text/event-plain"
                and not self.event_filter(frame.body)
            ):
                return
            try:
                event = frame_event(frame)
            except FramingError:
                raise _ProtocolError(f"malformed {ct} body") from None
            if event is not None:
                self._on_event(event)
                self._put_event(event)
        elif ct == "text/disconnect-notice":
            self._on_disconnect_notice(frame)
        elif ct == "auth/request":
            self._auth_request_event.set()
        elif ct == "text/rude-rejection":
            log.warning("%s: connection rejected by the peer", self._label)
            self._begin_disconnect("rejected")
            self._auth_request_event.set()
        elif ct == "log/data":
            pass
        else:
            log.warning("%s: ignoring a frame of type %s", self._label, ct[:60])

    def _on_disconnect_notice(self, frame: Frame) -> None:
        headers = frame.decoded_headers()
        headers["Event-Name"] = "DISCONNECT"
        body = frame.body.decode("utf-8", errors="replace") if frame.body else None
        linger = headers.get("Content-Disposition") == "linger"
        if linger:
            self._lingering = True
            log.info("%s: channel down, socket lingers", self._label)
        else:
            log.info("%s: disconnect notice", self._label)
            self._begin_disconnect("disconnect notice")
        self._put_event(Event(headers, body, list(headers)))

    def _begin_disconnect(self, reason: str) -> None:
        """The peer will close: new commands fail now, and so do commands still waiting."""
        self._disconnecting = True
        self._close_reason = reason
        self._fail_waiters(reason)

    def _fail_waiters(self, reason: str) -> None:
        exc = ESLDisconnected(f"{self._label}: {reason}")
        while self._pending:
            self._pending.pop(0).set_exception(exc)
        for waiters in self._waiter_maps():
            for waiter in waiters.values():
                waiter.set_exception(exc)
            waiters.clear()

    def _waiter_maps(self) -> list[dict[str, AsyncResult]]:
        return [self._exec_waiters]

    def _shutdown(self, reason: str) -> None:
        """Close the socket, fail everything waiting, queue SOCKET_CLOSED (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._close_reason = self._close_reason or reason
        self._run = False
        log.debug("%s: socket closed (%s)", self._label, reason)
        sock = getattr(self, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(gevent.socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._fail_waiters(reason)
        self._closed_event = Event({"Event-Name": "SOCKET_CLOSED", "Reason": reason}, None)
        if self._sink is not None:
            self._sink(self._closed_event)
        # queued either way: it also wakes a next_event() waiting beside a sink
        self._events.put(self._closed_event)
        self._done.set()

    def close(self) -> None:
        """Close the connection (idempotent); waiting commands fail with ESLDisconnected."""
        self._shutdown("closed")

    def wait_closed(self, timeout: float) -> bool:
        """Wait until the socket is closed; True if it is."""
        return self._done.wait(timeout)


class OutboundSession(_Hardened, gs.OutboundSession):
    """One call controlled through FreeSWITCH's outbound socket (``socket ... async full``)."""

    def __init__(self, sock, address, *, command_timeout: float = 10.0) -> None:
        gs.ESLProtocol.__init__(self)  # not gs.OutboundSession.__init__: it starts its reader
        self._esl_event_queue = None  # greenswitch's, never used here (a Queue is 3.7 KiB)
        self._init_conn(command_timeout, OUTBOUND_MAX_BODY_BYTES)
        self.sock = sock
        self.address = address
        self.client_address = address
        self.channel_data: ChannelData | None = None
        self.session_data: ChannelData | None = None
        self.expected_events: dict = {}
        self._outbound_connected = False
        self._hungup = False
        self._label = "call (not connected)"
        self.start_event_handlers()

    @property
    def uuid(self) -> str | None:
        """The channel's uuid (``Unique-ID`` of the connect reply)."""
        return self.channel_data.get("Unique-ID") if self.channel_data else None

    @property
    def hungup(self) -> bool:
        """True once CHANNEL_HANGUP, a disconnect notice or the socket's close was seen."""
        return self._hungup or self._lingering or self._disconnecting or self._closed

    def connect(self) -> ChannelData:
        """Send ``connect``; return the channel data (the headers of the reply, URL-decoded
        when read; kept as one string, see :class:`~fsacd.esl.framing.ChannelData`)."""
        if self.channel_data is not None:
            return self.channel_data
        frame = self.send_command("connect")
        self.channel_data = ChannelData(frame.headers)
        self.session_data = self.channel_data
        self._outbound_connected = True
        self._label = f"call {self.uuid}"
        log.debug("%s: connected", self._label)
        return self.channel_data

    def myevents(self, fmt: str = "plain") -> None:
        """Subscribe to this channel's events (``plain`` or ``json``): all 23 types
        ``myevents`` names in mod_event_socket; :meth:`own_events` takes only some."""
        if fmt not in ("plain", "json"):
            raise ValueError(f"unsupported event format {fmt!r}")
        self.send_command("myevents" if fmt == "plain" else f"myevents {fmt}")

    def own_events(self, names: Iterable[str], fmt: str = "plain", *, linger: bool = False) -> None:
        """Subscribe to these event types of this channel only, and (``linger``) linger.

        ``filter Unique-ID <uuid>`` then ``event <fmt> <names>`` (and ``linger``), written
        at once: FreeSWITCH checks each event of the switch against a socket's type list
        first, so an event of a type not asked for costs it nothing more, while ``myevents``
        makes it look up the channel of every channel event of the switch and copy, encode
        and send 23 types of its own channel's events. The filter keeps the events of other
        channels away, as ``myevents`` does; it also drops events without a ``Unique-ID``
        (``myevents`` lets through BACKGROUND_JOB events of this socket's ``bgapi``, if
        subscribed).
        """
        if fmt not in ("plain", "json"):
            raise ValueError(f"unsupported event format {fmt!r}")
        wanted = [n.strip().upper() for n in names]
        if not wanted or not all(n.isascii() and n.replace("_", "").isalnum() for n in wanted):
            raise ValueError(f"invalid event names {wanted!r}")
        uuid = self.uuid
        if not uuid:
            raise ESLError(f"{self._label}: own_events() before connect()")
        commands = [f"filter Unique-ID {uuid}", f"event {fmt} {' '.join(wanted)}"]
        self.send_commands([*commands, "linger"] if linger else commands)

    def feed_event(self, event: Event) -> None:
        """An event of this channel that came another way (the controller's shared event
        connection, fsacd/esl/callfeed.py): handled as if this socket had read it."""
        if self._closed:
            return
        self._on_event(event)
        self._put_event(event)

    def linger(self, seconds: int | None = None) -> None:
        """Keep the socket open after hangup (for ``seconds``, or until it is closed)."""
        self.send_command("linger" if seconds is None else f"linger {int(seconds)}")

    def execute(
        self, app: str, arg: str | None = None, *, lock: bool = True, timeout: float | None = None
    ) -> str:
        """Execute ``app`` on the channel; return the ``event-uuid`` (``Application-UUID``).

        In ``async full`` mode the reply comes at once; the outcome arrives later as a
        CHANNEL_EXECUTE_COMPLETE event carrying the returned uuid.
        """
        event_uuid = str(uuidlib.uuid4())
        self._execute(app, arg, lock, event_uuid, timeout)
        return event_uuid

    def execute_many(
        self, apps: list[tuple[str, str | None, str]], *, lock: bool = True
    ) -> None:
        """Execute several applications, given as ``(app, arg, event_uuid)``, in one write:
        FreeSWITCH queues them in order, as if sent one by one, and the replies are awaited
        together (one round trip through the switch's socket thread instead of one each).
        A ``-ERR`` reply to any raises :class:`CommandError` once all replies came."""
        if not apps:
            return
        raws = [encode_execute(a, g, event_lock=lock, event_uuid=u) for a, g, u in apps]
        frames = self._request_many(raws, None)
        for frame in frames:
            text = _reply_text(frame)
            if text.startswith("-ERR"):
                raise CommandError(text)

    def _execute(
        self, app: str, arg: str | None, lock: bool, event_uuid: str, timeout: float | None
    ) -> None:
        raw = encode_execute(app, arg, event_lock=lock, event_uuid=event_uuid)
        frame = self._request(raw, timeout)
        text = _reply_text(frame)
        if text.startswith("-ERR"):
            raise CommandError(text)

    def execute_wait(
        self, app: str, arg: str | None = None, *, timeout: float, lock: bool = True
    ) -> Event:
        """Execute ``app`` and wait for its CHANNEL_EXECUTE_COMPLETE (also still queued).

        Raises :class:`ESLTimeout` if it does not come within ``timeout`` seconds (the
        connection stays usable) and :class:`ESLDisconnected` if the socket goes away.
        """
        event_uuid = str(uuidlib.uuid4())
        waiter = AsyncResult()
        self._exec_waiters[event_uuid] = waiter
        try:
            self._execute(app, arg, lock, event_uuid, None)
            waiter.wait(timeout)
            if not waiter.ready():
                raise ESLTimeout(f"{self._label}: {app} did not complete in {timeout}s")
            return waiter.get()
        finally:
            self._exec_waiters.pop(event_uuid, None)

    def api(self, cmd: str, timeout: float | None = None, *, check: bool = False) -> str:
        """Run ``api <cmd>`` on this socket; return the response body (``-ERR ...`` too).

        With ``check`` a ``-ERR`` response raises :class:`CommandError`.
        """
        return _api(self, cmd, timeout, check)

    # greenswitch API kept working through the hardened path
    def call_command(self, app_name, app_args=None, block=False, response_timeout=None):
        """greenswitch's ``call_command``: ``block`` needs a ``response_timeout``."""
        if not block:
            return self.execute(app_name, app_args)
        if response_timeout is None:
            raise ValueError("a blocking call_command needs a response_timeout")
        return self.execute_wait(app_name, app_args, timeout=response_timeout)

    def register_expected_event(self, *args, **kwargs):
        """greenswitch's unbounded waits are not supported; use :meth:`execute_wait`."""
        raise ESLError("use execute_wait() or next_event(), not greenswitch helpers")

    def answer(self) -> str:
        return self.execute("answer")

    def on_hangup(self, event) -> None:
        """Logs the channel uuid only (greenswitch logs the caller's number)."""
        self._hungup = True
        self._outbound_connected = False
        log.info("%s: channel hung up", self._label)

    def on_disconnect(self, event) -> None:
        self._outbound_connected = False
        log.debug("%s: disconnected", self._label)

    def on_event(self, event) -> None:
        """Unused: greenswitch's expected-event matching is replaced by :meth:`execute_wait`."""

    def _on_event(self, event: Event) -> None:
        if event.name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE") and not self._hungup:
            uid = event.get("Unique-ID")
            if self.uuid is None or uid is None or uid == self.uuid:
                self.on_hangup(event)
        super()._on_event(event)

    def _on_disconnect_notice(self, frame: Frame) -> None:
        self._outbound_connected = False
        super()._on_disconnect_notice(frame)

    def _shutdown(self, reason: str) -> None:
        self._outbound_connected = False
        super()._shutdown(reason)


def _api(conn: _Hardened, cmd: str, timeout: float | None, check: bool) -> str:
    frame = conn.send_command(f"api {cmd}", timeout=timeout)
    text = _reply_text(frame)
    if check and text.startswith("-ERR"):
        raise CommandError(text.strip())
    return text


class InboundClient(_Hardened, gs.InboundESL):
    """A connection to FreeSWITCH's inbound event socket (port 8021)."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        gs.InboundESL.__init__(self, host, port, password, timeout)
        self._init_conn(command_timeout)
        self.sock = None
        self._fmt = "plain"
        self._subscribed: set[str] = set()
        self._jobs: dict[str, AsyncResult] = {}
        self._unclaimed_jobs: OrderedDict[str, Event] = OrderedDict()
        self._label = f"inbound {host}:{port}"

    def connect(self) -> None:
        """Connect and authenticate; raises AuthError (an ESLError) on a wrong password."""
        if self._reader is not None:
            raise ESLError(f"{self._label}: connect() called twice")
        try:
            self.sock = gevent.socket.create_connection((self.host, self.port), self.timeout)
        except OSError as exc:
            raise ESLDisconnected(f"{self._label}: cannot connect ({exc.strerror})") from None
        self.sock.settimeout(None)
        self.start_event_handlers()
        if not self._auth_request_event.wait(self.timeout):
            self.close()
            raise ESLTimeout(f"{self._label}: no auth/request within {self.timeout}s")
        self.authenticate()

    def authenticate(self) -> None:
        frame = self.send_command(f"auth {self.password}", check=False)
        if _reply_text(frame) != "+OK accepted":
            self.close()
            why = "no password given" if not self.password else "wrong password"
            raise AuthError(f"authentication failed ({why})")
        _AUTH_REPORTED.discard((self.host, self.port))

    def api(self, cmd: str, timeout: float | None = None, *, check: bool = False) -> str:
        """Run ``api <cmd>``; return the response body (``-ERR ...`` too unless ``check``)."""
        return _api(self, cmd, timeout, check)

    def bgapi(self, cmd: str, timeout: float = 30.0) -> str:
        """Run ``bgapi <cmd>`` and return the body of its BACKGROUND_JOB event.

        Subscribes to BACKGROUND_JOB if needed. Raises :class:`ESLTimeout` if the job does not
        finish within ``timeout`` seconds (the connection stays usable).
        """
        if not self._subscribed & {"BACKGROUND_JOB", "ALL"}:
            self.subscribe(["BACKGROUND_JOB"], self._fmt)
        job = str(uuidlib.uuid4())
        waiter = AsyncResult()
        self._jobs[job] = waiter
        try:
            frame = self.send_command(f"bgapi {cmd}", [("Job-UUID", job)])
            got = frame.headers.get("Job-UUID", job)
            if got != job:  # a server that ignores our Job-UUID
                self._jobs[got] = self._jobs.pop(job)
                job = got
                early = self._unclaimed_jobs.pop(job, None)
                if early is not None:
                    return early.body or ""
            waiter.wait(timeout)
            if not waiter.ready():
                raise ESLTimeout(f"{self._label}: background job not done in {timeout}s")
            return waiter.get().body or ""
        finally:
            self._jobs.pop(job, None)

    def subscribe(self, events: list[str], fmt: str = "plain") -> None:
        """``event <fmt> <names...>`` (adds to the subscription; sets the format)."""
        if fmt not in ("plain", "json"):
            raise ValueError(f"unsupported event format {fmt!r}")
        names = [e.strip() for e in events]
        if not names or not all(names):
            raise ValueError("event names must not be empty")
        self.send_command(f"event {fmt} {' '.join(names)}")
        self._fmt = fmt
        self._subscribed.update(w.upper() for n in names for w in n.split())

    def filter(self, header: str, value: str) -> None:
        """``filter <header> <value>``: only events with that header value are delivered."""
        if not header or " " in header:
            raise ValueError("invalid filter header")
        self.send_command(f"filter {header} {value}")

    def _on_event(self, event: Event) -> None:
        if event.name == "BACKGROUND_JOB":
            job = event.get("Job-UUID") or ""
            waiter = self._jobs.get(job)
            if waiter is not None:
                waiter.set(event)
            else:
                self._unclaimed_jobs[job] = event
                while len(self._unclaimed_jobs) > MAX_UNCLAIMED_JOBS:
                    self._unclaimed_jobs.popitem(last=False)
        super()._on_event(event)

    def _waiter_maps(self) -> list[dict[str, AsyncResult]]:
        return [self._exec_waiters, self._jobs]
