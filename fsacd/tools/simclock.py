"""The accelerated clock of ``fsacd simulate``: one process-wide clock running ``speed`` times
faster than the wall clock.

:func:`install` must run first in a fresh process, before gevent's hub exists and before any
fsacd module is imported (``Store(clock=time.time)`` binds the function at import). It makes

- ``time.time``, ``time.monotonic`` (and their ``_ns`` forms) return simulated time: they
  advance ``speed`` seconds per wall second, starting from the wall clock at installation;
- every gevent timer fire after ``1/speed`` of its duration: ``gevent.sleep``,
  ``gevent.Timeout``, ``Event.wait(timeout)``, ``Queue.get(timeout)``, socket timeouts, and
  ``time.sleep`` once gevent has patched it (the hub's loop is a subclass whose ``timer``
  divides by ``speed``).

and makes libev wait with ``select`` (microsecond timeouts; epoll's are whole
milliseconds, ``speed`` ms of simulated time each). So fsacd's timers (ring timeouts,
wrap-up, ``max_wait``, the matcher's ready-at timers and sweep, leases), ``Store.clock`` and
the stand-in's media ticks, ring delays and epoch-second ``leg_timeout`` all run on the same
simulated clock, and no code path changes. What is *not* scaled: CPU time, and the time Redis
and the loopback sockets take. A step that costs 5 ms of real time costs ``5 ms * speed`` of
simulated time (0.6 s at speed 120); see docs/simulate.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: the wall clock, for the tool's own use (progress, wall time) after installation
real_time: Callable[[], float] = time.time
real_monotonic: Callable[[], float] = time.monotonic

_state: dict[str, float] = {}


def speed() -> float:
    """The installed speed (1.0 when no clock was installed)."""
    return _state.get("speed", 1.0)


def install(factor: float) -> None:
    """Run this process on a clock ``factor`` times faster than the wall clock."""
    if factor <= 0:
        raise ValueError("speed must be positive")
    if _state:
        raise RuntimeError("the simulated clock is already installed")
    import gevent
    from gevent._hub_local import get_hub_if_exists

    if get_hub_if_exists() is not None:
        raise RuntimeError("install the simulated clock before gevent's hub starts")
    mono0, wall0 = real_monotonic(), real_time()
    _state.update(speed=factor, mono0=mono0, wall0=wall0)

    def sim_monotonic() -> float:
        return mono0 + (real_monotonic() - mono0) * factor

    def sim_time() -> float:
        return wall0 + (real_monotonic() - mono0) * factor

    time.time = sim_time
    time.monotonic = sim_monotonic
    time.time_ns = lambda: int(sim_time() * 1e9)
    time.monotonic_ns = lambda: int(sim_monotonic() * 1e9)

    base = gevent.config.settings["loop"].get()

    class ScaledLoop(base):  # type: ignore[misc, valid-type]
        """gevent's loop with every timer ``factor`` times shorter."""

        def timer(self, after: float, repeat: float = 0.0, ref: bool = True, priority=None):
            return super().timer(after / factor, repeat / factor, ref, priority)

    gevent.config.loop = ScaledLoop
    # epoll and poll wait in whole milliseconds: every timer would fire up to 1 ms of wall
    # time late, i.e. ``speed`` ms simulated (a 20 ms media tick took 145 ms at speed 120);
    # libev's select backend waits in microseconds (the same tick: 42 ms)
    if "libev" in base.__module__:
        gevent.config.libev_backend = "select"
