"""Where a call goes, and at which priority (pure; never raises on bad input).

Target: the channel variable ``fsacd_route`` (``variable_fsacd_route`` in the connect data)
if set, else the ``[routes]`` entry for the destination number (exact, else the same number in
E.164), else ``default_route``. A target is ``queue:NAME`` or ``ivr:NAME`` (a menu of
``[ivr.NAME]``, docs/ivr.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from fsacd.core import numbers

log = logging.getLogger(__name__)

PRIORITY_MIN = 0
PRIORITY_MAX = 1000
ROUTE_VAR = "variable_fsacd_route"
PRIORITY_VAR = "variable_fsacd_priority"
KINDS = ("queue", "ivr", "dial")

_TARGET = re.compile(r"([a-z]+):(.*)", re.DOTALL)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Switch(Protocol):
    @property
    def default_region(self) -> str: ...


class RoutingConfig(Protocol):
    """What :func:`resolve` reads of the config (a ``fsacd.config.Config`` is one).

    Also read when present: ``ivr`` (menu names) and ``routes_e164`` (E.164 form of each
    route key → target).
    """

    @property
    def queues(self) -> Collection[str]: ...
    @property
    def routes(self) -> Mapping[str, str]: ...
    @property
    def default_route(self) -> str | None: ...
    @property
    def freeswitch(self) -> _Switch: ...


class QueuePriority(Protocol):
    """What :func:`call_priority` reads of a queue's config."""

    @property
    def name(self) -> str: ...
    @property
    def priority(self) -> int: ...


@dataclass(frozen=True)
class Target:
    """A resolved target; ``source`` is ``channel``, ``route`` or ``default``."""

    kind: Literal["queue", "ivr", "dial"]
    name: str
    source: str = ""


@dataclass(frozen=True)
class RouteError:
    """Why a call can't be routed (safe to log: no caller number in it)."""

    reason: str


@dataclass(frozen=True)
class Priority:
    value: int
    warning: str | None = None


def _show(text: str) -> str:
    return repr(text[:64] + ("..." if len(text) > 64 else ""))


def parse_target(
    text: str, queues: Collection[str], menus: Collection[str] = ()
) -> Target | RouteError:
    """``queue:NAME`` (NAME one of ``queues``), ``ivr:NAME`` (one of ``menus``) or
    ``dial:NAME`` (an agent's call out to a customer, under queue NAME's caller-ID policy)
    → :class:`Target`; else a :class:`RouteError`."""
    if not isinstance(text, str):
        return RouteError(f"target must be a string like 'queue:NAME', got {type(text).__name__}")
    m = _TARGET.fullmatch(text.strip())
    if not m:
        return RouteError(f"malformed target {_show(text)}: expected 'queue:NAME' or 'ivr:NAME'")
    kind, name = m.group(1), m.group(2)
    if kind not in KINDS:
        return RouteError(
            f"unknown target kind {_show(kind)} in {_show(text)}:"
            " expected 'queue:NAME' or 'ivr:NAME'"
        )
    if not _NAME.fullmatch(name):
        return RouteError(f"malformed {kind} name in target {_show(text)}")
    if kind == "ivr":
        if name not in menus:
            return RouteError(f"no IVR menu named {_show(name)}")
        return Target(kind="ivr", name=name)
    if name not in queues:
        return RouteError(f"no queue named {_show(name)}")
    return Target(kind="dial" if kind == "dial" else "queue", name=name)


def resolve(
    channel_vars: Mapping[str, str], destination: str | None, cfg: RoutingConfig
) -> Target | RouteError:
    """The target of a call; a :class:`RouteError` (never an exception) when there is none."""
    try:
        return _resolve(channel_vars, destination or "", cfg)
    except Exception as exc:  # noqa: BLE001 - routing must never kill the call greenlet
        return RouteError(f"routing failed: {type(exc).__name__}")


def _resolve(
    channel_vars: Mapping[str, str], destination: str, cfg: RoutingConfig
) -> Target | RouteError:
    menus = getattr(cfg, "ivr", None) or {}
    explicit = (channel_vars.get(ROUTE_VAR) or "").strip()
    if explicit:
        return _with_source(parse_target(explicit, cfg.queues, menus), "channel", "fsacd_route")
    target = cfg.routes.get(destination)
    if target is None and destination:
        n = numbers.normalise(destination, cfg.freeswitch.default_region)
        if n.e164:
            target = getattr(cfg, "routes_e164", {}).get(n.e164)
    if target is not None:
        return _with_source(parse_target(target, cfg.queues, menus), "route", "[routes]")
    if cfg.default_route:
        return _with_source(
            parse_target(cfg.default_route, cfg.queues, menus), "default", "default_route"
        )
    return RouteError("no route for the destination and no default_route")


def _with_source(result: Target | RouteError, source: str, where: str) -> Target | RouteError:
    if isinstance(result, RouteError):
        return RouteError(f"{where}: {result.reason}")
    return Target(kind=result.kind, name=result.name, source=source)


def call_priority(channel_vars: Mapping[str, str], qcfg: QueuePriority) -> Priority:
    """``fsacd_priority`` (0..1000) if set and valid, else the queue's priority (with a warning
    when the variable was set but unusable)."""
    raw = (channel_vars.get(PRIORITY_VAR) or "").strip()
    if not raw:
        return Priority(qcfg.priority)
    if re.fullmatch(r"[0-9]{1,4}", raw) and PRIORITY_MIN <= int(raw) <= PRIORITY_MAX:
        return Priority(int(raw))
    return Priority(
        qcfg.priority,
        f"fsacd_priority {_show(raw)} is not a whole number from {PRIORITY_MIN} to"
        f" {PRIORITY_MAX}; using the queue's priority {qcfg.priority}",
    )


def priority(channel_vars: Mapping[str, str], qcfg: QueuePriority) -> int:
    """:func:`call_priority` as a plain int; the warning, if any, is logged."""
    p = call_priority(channel_vars, qcfg)
    if p.warning:
        log.warning("queue %s: %s", qcfg.name, p.warning)
    return p.value
