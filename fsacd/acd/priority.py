"""Real-time scheduling for ``fsacd serve`` (``[server] realtime_priority``).

fsacd is one thread. FreeSWITCH, unless started with ``-np``, runs all its threads under
``SCHED_FIFO`` (a channel's at priority 1), so on a box it shares with fsacd its hundreds of
threads (one or two per channel, each woken every 20 ms) always preempt fsacd under load:
measured at 50 calls/s on 2 cores, fsacd was runnable 88 % of the time yet ran 25-38 %,
megabytes of events waited in its sockets and the median call took seconds to bridge.
mod_callcenter runs inside the switch's threads. With ``SCHED_RR`` above 1 the controller
runs when it has work (docs/performance.md).

A child started after the switch (the embedded Redis) inherits the policy.
"""

from __future__ import annotations

import os


def take_realtime(priority: int, pid: int = 0) -> str | None:
    """Put ``pid`` (0: this process) under ``SCHED_RR`` at ``priority`` (1-99). None when
    done, else why not (one line: no permission, no such policy on this system)."""
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_RR"):
        return "this system has no SCHED_RR scheduling"
    try:
        os.sched_setscheduler(pid, os.SCHED_RR, os.sched_param(priority))
    except PermissionError:
        return (
            "not permitted (needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least "
            f"{priority}: systemd LimitRTPRIO={priority}, or run it with chrt -r {priority})"
        )
    except OSError as exc:
        return f"refused by the system ({exc.strerror or exc})"
    return None


def current(pid: int = 0) -> str:
    """``rr:PRIO``, ``fifo:PRIO`` or ``normal`` (for the log and the benchmarks)."""
    if not hasattr(os, "sched_getscheduler"):
        return "normal"
    policy = os.sched_getscheduler(pid)
    prio = os.sched_getparam(pid).sched_priority
    if policy == getattr(os, "SCHED_RR", None):
        return f"rr:{prio}"
    if policy == getattr(os, "SCHED_FIFO", None):
        return f"fifo:{prio}"
    return "normal"
