"""The ``socket`` application: connect to the controller and hand it the channel.

``socket 127.0.0.1:8084 async full``: try each ``|``-separated host, start a listener on the
connection, wait for the controller's ``connect``, then park the channel and run what the
controller queues (``sendmsg``) until it hangs up or the controller lets go. When the
controller closes the socket, ``socket_resume=true`` (or ``resume``) interrupts the running
application; either way the dialplan continues after ``socket`` once the park ends.
The application registers itself into ``apps.APPS`` when this module is imported.
"""

from __future__ import annotations

import time
from typing import cast

from gevent import socket as gsocket

from .apps import app, park, parse_all_events
from .channel import Channel
from .fsstrings import is_true, separate_string
from .listener import Listener, SocketSwitch


@app("socket")
def socket_app(ch: Channel, arg: str | None) -> None:
    argv = separate_string(arg, " ", 80)
    if not argv:
        ch.note("socket_error", "Parse Error!")
        return
    async_mode = any(a.lower() == "async" for a in argv[1:])
    full = any(a.lower() == "full" for a in argv[1:])
    sock = None
    for host in argv[0].split("|"):
        if not host:
            continue
        name, sep, port = host.rpartition(":")
        if not sep:
            name, port = host, "8084"
        if "/" in port:
            port, _, path = port.partition("/")
            ch.set_var("socket_path", path)
        ch.set_var("socket_host", name)
        try:
            sock = gsocket.create_connection((name, int(port)), timeout=ch.fs.connect_timeout)
        except (OSError, ValueError) as exc:
            ch.note("socket_error", f"{host}: {exc}")
            continue
        break
    if sock is None:
        ch.note("socket_error", "Socket Error!")
        return
    sock.settimeout(None)
    sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
    # a channel's switch is the whole FakeFreeSwitch: the connection needs its api too
    fs = cast(SocketSwitch, ch.fs)
    listener = Listener(
        fs, sock, session=ch, outbound=True, async_mode=async_mode, full=full, socket_arg=arg
    )
    listener.connected.rawlink(lambda _e: ch.kick())
    listener.finished.rawlink(lambda _e: ch.kick())
    if not async_mode:
        listener.start(inline=True)
        return
    listener.start()
    while True:
        ch.sig.clear()
        if not ch.ready() or listener.finished.is_set() or listener.connected.is_set():
            break
        ch.sig.wait()
    # FreeSWITCH parks on the next frame after ``connect``, and runs what the controller
    # queued one frame later: the first slot comes 20-40 ms after ``connect`` (the recordings
    # put the frames' phase at the connect; a channel's phase is arbitrary anyway).
    first = ch.fs.tick if ch.fs.first_tick is None else ch.fs.first_tick
    ch.tick_origin = time.time() + first - ch.fs.tick
    ch.next_tick()
    park(ch)
    parse_all_events(ch)
    if (
        ch.up()
        and "REDIRECT" not in ch.flags
        and "TRANSFER" not in ch.flags
        and (listener.resume or is_true(ch.get_var("socket_resume")))
    ):
        ch.state = "CS_EXECUTE"
