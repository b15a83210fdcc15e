"""Monitoring commands: ``fsacd stats``, ``fsacd watch`` (a terminal wallboard) and
``fsacd web`` (the wallboard, ``/agent/ID`` and ``/metrics``). See docs/monitoring.md."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Group
from rich.text import Text

from fsacd.cli.common import (
    App,
    console,
    duration,
    echo_json,
    fail,
    handles_errors,
    json_flag,
    new_table,
    pass_app,
)
from fsacd.core import figures as fig


def stats_store(app: App) -> Any:
    from fsacd.state.stats import StatsStore

    return StatsStore.of(app.store)


def since_start(app: App, since: str) -> float:
    """``--since`` as epoch seconds, in the config's ``[stats] timezone``."""
    try:
        return fig.parse_since(since, time.time(), fig.zone(app.cfg.monitoring.timezone))
    except ValueError as exc:
        fail(str(exc))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def _secs(v: float | None) -> str:
    return "-" if v is None else duration(v) if v >= 60 else f"{v:.0f}s"


def _check_queues(app: App, names: tuple[str, ...]) -> list[str]:
    known = sorted(app.cfg.queues)
    for q in names:
        if q not in app.cfg.queues:
            fail(f"no queue named {q!r} (configured: {', '.join(known) or 'none'})")
    return list(dict.fromkeys(names)) or known


@click.command("stats")
@click.option("--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@click.option("--agent", "agents", multiple=True, help="Only this agent (repeatable).")
@click.option(
    "--since",
    default="today",
    show_default=True,
    help="today, a duration (15m, 1h, 7d) or a date YYYY-MM-DD; to now.",
)
@json_flag
@pass_app
@handles_errors
def stats_cmd(
    app: App, queues: tuple[str, ...], agents: tuple[str, ...], since: str, as_json: bool
) -> None:
    """Offered, answered, abandoned, service level, ASA, AHT, longest wait per queue and
    per agent, from the counters in Redis (right across restarts)."""
    start = since_start(app, since)
    names = _check_queues(app, queues)
    st = stats_store(app)
    qfig = st.queue_figures(names, start)
    all_agents = app.store.list_agents()
    if agents:
        known = {a["id"] for a in all_agents}
        for a in agents:
            if a not in known:
                fail(f"no agent {a!r}")
        all_agents = [a for a in all_agents if a["id"] in agents]
    elif queues:
        all_agents = [a for a in all_agents if set(a.get("queues") or {}) & set(names)]
    afig = st.agent_figures(all_agents, start)
    since_iso = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start))
    if as_json:
        if len(queues) == 1 and not agents:
            echo_json({"queue": names[0], "since": since_iso, **qfig[names[0]].to_dict()})
            return
        echo_json(
            {
                "since": since_iso,
                "queues": {q: f.to_dict() for q, f in qfig.items()},
                "agents": {a: f.to_dict() for a, f in afig.items()},
            }
        )
        return
    con = console()
    t = new_table(
        "QUEUE", "OFFERED", "ANSWERED", "ABANDONED", "SL", "ASA", "AHT", "LONGEST WAIT",
        title=f"since {time.strftime('%Y-%m-%d %H:%M', time.localtime(start))}",
    )  # fmt: skip
    for q, f in qfig.items():
        t.add_row(
            q, str(f.offered), str(f.answered), str(f.abandoned), _pct(f.service_level),
            _secs(f.asa), _secs(f.aht), _secs(f.longest_wait),
        )  # fmt: skip
    con.print(t)
    if afig:
        t = new_table("AGENT", "OFFERED", "ANSWERED", "MISSED", "TALK", "AHT", "TIME IN STATE")
        for a, f in afig.items():
            t.add_row(
                a, str(f.offered), str(f.answered), str(f.missed), _secs(f.talk_time),
                _secs(f.aht), _states_text(f.time_in_state),
            )  # fmt: skip
        con.print(t)


def _states_text(times: dict[str, float]) -> str:
    return " ".join(f"{k} {duration(v)}" for k, v in times.items()) or "-"


# --- watch ------------------------------------------------------------------------------------


def render_snapshot(snap: dict[str, Any], title: str = "fsacd") -> Group:
    """A snapshot (StatsStore.snapshot) as rich tables: queues, then agents."""
    stamp = time.strftime("%H:%M:%S", time.localtime(snap["ts"]))
    qt = new_table(
        "QUEUE", "WAITING", "LONGEST", "TALKING", "SL TODAY", "ANSWERED", "ABANDONED", "ASA",
        title=f"{title} — {stamp}",
    )  # fmt: skip
    for q in snap["queues"]:
        qt.add_row(
            q["name"], str(q["waiting"]), _secs(q["longest_wait"]), str(q["talking"]),
            _pct(q["service_level"]), str(q["answered"]), str(q["abandoned"]), _secs(q["asa"]),
        )  # fmt: skip
    at = new_table("AGENT", "STATE", "FOR", "ANSWERED", "TALK", "QUEUES")
    for a in snap["agents"]:
        state = a["activity"]
        if state == "on-break" and a["break_reason"]:
            state = f"on-break ({a['break_reason']})"
        at.add_row(
            a["id"], state, _secs(a["in_state"]), str(a["answered"]), _secs(a["talk_time"]),
            " ".join(a["queues"]),
        )  # fmt: skip
    counts = "  ".join(f"{k} {v}" for k, v in snap["agents_by_state"].items() if v)
    return Group(qt, Text(f"agents: {counts or 'none'}"), at)


@click.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(0.5, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@pass_app
@handles_errors
def watch_cmd(app: App, interval: float, once: bool) -> None:
    """A live terminal wallboard: queues (waiting, longest wait, service level today) and
    agents by state with time in state. Ctrl-C exits."""
    st = stats_store(app).caching(60.0)
    tz = fig.zone(app.cfg.monitoring.timezone)

    def frame() -> Group:
        snap = st.snapshot(fig.day_start(time.time(), tz), app.cfg.queues)
        return render_snapshot(snap, app.cfg.web.title)

    con = console()
    if once:
        con.print(frame())
        return
    from rich.live import Live

    try:
        if not con.is_terminal:  # a pipe or a file: one frame after the other
            while True:
                con.print(frame())
                con.file.flush()
                time.sleep(interval)
        with Live(frame(), console=con, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(frame())
    except KeyboardInterrupt:
        pass


# --- web --------------------------------------------------------------------------------------


@click.command("web")
@click.option("--listen", default=None, help="HOST:PORT (default: [web] listen, loopback).")
@pass_app
def web_cmd(app: App, listen: str | None) -> None:
    """Serve the wallboard (/), /agent/ID and /metrics from Redis. Beyond loopback an access
    token is required ([web] token_env / token_file)."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    from fsacd.config import split_address
    from fsacd.web.server import WebError, run

    addr = listen or app.cfg.web.listen
    try:
        host, port = split_address(addr)
    except ValueError as exc:
        fail(f"--listen {addr}: {exc}")
    try:
        run(app.cfg, app.store, (host, port), config_path=str(app.path))
    except WebError as exc:
        fail(str(exc))
