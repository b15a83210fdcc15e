"""What every command group of the CLI shares: the per-invocation App, output helpers
(JSON, tables, times), and one-line errors instead of tracebacks."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich import box
from rich.console import Console
from rich.table import Table

from fsacd.config import Config, ConfigError, load, resolve_path

json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


class App:
    """Per-invocation state: the config path, and the config and store once needed."""

    def __init__(self, config_path: Path | None) -> None:
        self.path = resolve_path(config_path)
        self._cfg: Config | None = None
        self._redis: Any = None
        self._store: Any = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            try:
                self._cfg = load(self.path)
            except ConfigError as exc:
                fail_config(self.path, exc.errors)
        return self._cfg

    @property
    def redis(self) -> Any:
        """The Redis connection, for building the feature objects (``Contacts(app.redis,
        app.store.keys)``); only fsacd/state talks to it."""
        if self._redis is None:
            from fsacd.state.connection import connect

            cfg = self.cfg
            self._redis = connect(cfg.redis.url, cfg.redis.data_dir)
        return self._redis

    @property
    def store(self) -> Any:
        if self._store is None:
            from fsacd.state.store import Store

            self._store = Store(
                self.redis,
                prefix=self.cfg.redis.prefix,
                controller_id="cli",
                events_maxlen=self.cfg.monitoring.events_max_length,
            )
        return self._store


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def fail_config(path: Path, errors: list[str]) -> NoReturn:
    for line in errors:
        click.echo(f"{path}: {line}" if not line.startswith(str(path)) else line, err=True)
    sys.exit(1)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Store and Redis errors become one line on stderr and exit code 1, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from fsacd.state.connection import RedisError
        from fsacd.state.store import AgentBusy, UnknownAgent, UnknownQueue

        try:
            return fn(*args, **kwargs)
        except (UnknownAgent, UnknownQueue, AgentBusy, ValueError) as exc:
            fail(str(exc))
        except RedisError as exc:
            fail(f"Redis: {exc}")

    return wrapper


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def console() -> Console:
    """Rich console; when not on a terminal, wide enough that tables don't wrap."""
    con = Console(highlight=False)
    if not con.is_terminal:
        con = Console(highlight=False, width=200)
    return con


def new_table(*columns: str, title: str | None = None) -> Table:
    return Table(*columns, title=title, box=box.SIMPLE_HEAD, title_justify="left")


def ago(ts: float | None, now: float | None = None) -> str:
    """``ts`` as an age: ``42s``, ``3m05s``, ``2h10m``, ``3d4h``; ``-`` if unset."""
    if not ts:
        return "-"
    return duration(max(0.0, (now or time.time()) - ts))


def duration(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def when(ts: float | None, now: float) -> str:
    """A timestamp as local time with its distance from now; ``-`` if unset."""
    if not ts:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    if ts > now:
        return f"{stamp} (in {duration(ts - now)})"
    return f"{stamp} ({ago(ts, now)} ago)"


def human(value: Any) -> str:
    """A config or state value as a person reads it: ``yes``/``no``, lists comma-separated
    (``none`` when empty), whole floats without ``.0``, ``-`` for unset; never Python's repr."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (tuple, list, set, frozenset)):
        return ", ".join(human(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={human(v)}" for k, v in value.items()) if value else "none"
    return str(value)


def is_time_field(key: str) -> bool:
    """Fields holding a timestamp (epoch seconds): shown as local time, numbers in --json."""
    return key.endswith(("_at", "_since")) or key in ("last_call_end", "ready_at")


def queues_text(queues: dict[str, int]) -> str:
    return " ".join(f"{q}:{p}" for q, p in sorted(queues.items(), key=lambda kv: (kv[1], kv[0])))


def status_text(agent: dict[str, Any]) -> str:
    status = agent.get("status", "")
    if status == "on-break" and agent.get("break_reason"):
        return f"{status} ({agent['break_reason']})"
    return status


pass_app = click.make_pass_decorator(App)
