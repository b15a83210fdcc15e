"""Minimal raw event-socket peers for tests: a scripted controller and an inbound client.

They speak bytes on real TCP sockets, without any ESL library, so a test sees exactly what
the stand-in sends::

    ctl = ScriptedController()                    # listens on 127.0.0.1:<ctl.port>
    fs = FakeFreeSwitch(socket_target=ctl.address)
    call = fs.place_call()
    ctl.accept()
    ctl.command("connect")                        # the CHANNEL_DATA reply frame
    ctl.command("myevents")
    ctl.sendmsg("answer")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="answer")
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
from gevent import socket

from fsacd.esl.framing import Event, Frame, FrameReader, encode_command, frame_event


class Peer:
    """One TCP connection: collects frames; replies are taken in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: list[Frame] = []
        self.closed = False
        self._reply_index = 0
        self._event_index = 0
        self._reader = gevent.spawn(self._run)

    def _run(self) -> None:
        reader = FrameReader()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            self.frames.extend(reader.feed(data))

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> object:
        end = time.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.time() > end:
                raise TimeoutError(f"timed out after {timeout}s")
            gevent.sleep(0.002)

    def next_reply(self, timeout: float = 5.0) -> Frame:
        """The next command/reply or api/response not taken yet (CHANNEL_DATA included)."""

        def find() -> Frame | None:
            for i in range(self._reply_index, len(self.frames)):
                f = self.frames[i]
                if f.content_type in ("command/reply", "api/response"):
                    self._reply_index = i + 1
                    return f
            return None

        return self.wait_for(find, timeout)  # type: ignore[return-value]

    def command(self, line: str, headers: dict[str, str] | None = None, body: str | None = None,
                timeout: float = 5.0) -> Frame:  # fmt: skip
        self.send(encode_command(line, headers or {}, body))
        return self.next_reply(timeout)

    def api(self, line: str, timeout: float = 5.0) -> str:
        return self.command(f"api {line}", timeout=timeout).body.decode()

    def events(self, name: str | None = None) -> list[Event]:
        out = []
        for f in list(self.frames):
            ev = frame_event(f)
            if ev is not None and (name is None or ev.name == name):
                out.append(ev)
        return out

    def wait_event(self, name: str, timeout: float = 5.0, **headers: str) -> Event:
        """The next event named ``name`` (after the last one waited for) with these headers.

        Header keywords use ``_`` for ``-`` (names compare case-insensitively, values
        exactly): ``application="bridge"`` means ``Application: bridge``.
        """
        want = {k.replace("_", "-").lower(): v for k, v in headers.items()}

        def matches(ev: Event) -> bool:
            have = {k.lower(): v for k, v in ev.headers.items()}
            return ev.name == name and all(have.get(k) == v for k, v in want.items())

        def find() -> Event | None:
            evs = self.events()
            for i in range(self._event_index, len(evs)):
                ev = evs[i]
                if matches(ev):
                    self._event_index = i + 1
                    return ev
            return None

        return self.wait_for(find, timeout)  # type: ignore[return-value]

    def wait_closed(self, timeout: float = 5.0) -> None:
        self.wait_for(lambda: self.closed, timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ScriptedController(Peer):
    """The controller side of ``socket 127.0.0.1:<port> async full``: one call at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(16)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.getsockname()[:2]

    @property
    def port(self) -> int:
        return self.address[1]

    def accept(self, timeout: float = 5.0) -> ScriptedController:
        self.server.settimeout(timeout)
        sock, _ = self.server.accept()
        sock.settimeout(None)
        Peer.__init__(self, sock)
        return self

    def connect(self) -> Frame:
        """``connect``: the CHANNEL_DATA reply."""
        return self.command("connect")

    def sendmsg(self, app: str, arg: str | None = None, lock: bool = True, **headers: str) -> Frame:
        hs = {"call-command": "execute", "execute-app-name": app}
        if arg is not None:
            hs["execute-app-arg"] = arg
        if lock:
            hs["event-lock"] = "true"
        hs.update({k.replace("_", "-"): v for k, v in headers.items()})
        return self.command("sendmsg", hs)

    def shutdown(self) -> None:
        self.close()
        self.server.close()


class InboundClient(Peer):
    """A raw inbound connection (port 8021 style)."""

    def __init__(self, address: tuple[str, int], password: str | None = "ClueCon") -> None:
        super().__init__(socket.create_connection(address))
        first = self.next_reply_any()
        assert first.content_type == "auth/request", first.headers
        if password is not None:
            reply = self.command(f"auth {password}")
            assert reply.headers.get("Reply-Text") == "+OK accepted", reply.headers

    def next_reply_any(self, timeout: float = 5.0) -> Frame:
        def find() -> Frame | None:
            if self._reply_index < len(self.frames):
                f = self.frames[self._reply_index]
                self._reply_index += 1
                return f
            return None

        return self.wait_for(find, timeout)  # type: ignore[return-value]
