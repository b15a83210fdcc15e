"""``[routes]`` (destination number → target) and ``default_route``.

Targets are checked with :func:`fsacd.core.routing.parse_target` against the queues and menus;
each destination that is a valid number is also kept in E.164 form (``routes_e164``), so a
call to ``+49301234567`` finds the route written ``"0301234567"``.
"""

from __future__ import annotations

from collections.abc import Collection

from fsacd.config.reader import Table
from fsacd.core import numbers, routing
from fsacd.core.text import has_control, quote_key, show


def read_routes(
    t: Table,
    queues: Collection[str],
    menus: Collection[str],
    region: str,
    errors: list[str],
) -> tuple[dict[str, str], dict[str, str]]:
    """The routes and their E.164 forms: ``(routes, routes_e164)``, each destination → target.

    ``region`` (``freeswitch.default_region``) reads national destinations.
    """
    routes: dict[str, str] = {}
    routes_e164: dict[str, str] = {}
    e164_from: dict[str, str] = {}
    for dest, target in t.data.items():
        key = t.key(quote_key(dest))
        if not dest or len(dest) > 64 or any(ch.isspace() for ch in dest) or has_control(dest):
            errors.append(f"{key}: a destination must be 1 to 64 characters without spaces")
            continue
        if not isinstance(target, str):
            errors.append(f'{key}: must be a target string like "queue:NAME", got {show(target)}')
            continue
        parsed = routing.parse_target(target, queues, menus)
        if isinstance(parsed, routing.RouteError):
            errors.append(f"{key}: {parsed.reason}")
            continue
        routes[dest] = target
        n = numbers.normalise(dest, region)
        if n.e164:
            if n.e164 in routes_e164 and routes_e164[n.e164] != target:
                errors.append(
                    f"{key}: is the same number as {t.key(quote_key(e164_from[n.e164]))}"
                    " but routes elsewhere"
                )
            routes_e164.setdefault(n.e164, target)
            e164_from.setdefault(n.e164, dest)
    return routes, routes_e164


def check_default_route(
    default_route: str | None, queues: Collection[str], menus: Collection[str], errors: list[str]
) -> str | None:
    """``default_route`` if it is a usable target, else None (with an error)."""
    if default_route is None:
        return None
    parsed = routing.parse_target(default_route, queues, menus)
    if isinstance(parsed, routing.RouteError):
        errors.append(f"default_route: {parsed.reason}")
        return None
    return default_route
