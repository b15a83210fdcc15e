"""Where the config is read from, and the whole file read section by section into a
:class:`~fsacd.config.model.Config` (:func:`load`, :func:`load_text`, :func:`check`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fsacd.config.callerid import check_callerid, read_numbers
from fsacd.config.floor import read_agents, read_supervisor
from fsacd.config.ivr import check_menus, check_queue_exits, read_menus
from fsacd.config.model import Config
from fsacd.config.monitoring import read_http, read_monitoring, read_web
from fsacd.config.queues import read_queues
from fsacd.config.reader import ConfigError, Table, parse_toml
from fsacd.config.routes import check_default_route, read_routes
from fsacd.config.screenpop import read_crm, read_history
from fsacd.config.server import read_freeswitch, read_redis, read_server

DEFAULT_PATH = "fsacd.toml"
ENV_CONFIG = "FSACD_CONFIG"


def resolve_path(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """``explicit`` (``--config``), else ``$FSACD_CONFIG``, else ``./fsacd.toml``."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    return Path(DEFAULT_PATH)


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the file at ``path``; :class:`ConfigError` lists every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the config: {reason}"]) from None
    return load_text(text, source=str(path), env=env)


def load_text(text: str, source: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    """Validate TOML ``text``. ``env`` (default ``os.environ``) supplies ``REDIS_URL``."""
    env = os.environ if env is None else env
    data = parse_toml(text, source)
    errors: list[str] = []
    cfg = _build(data, source, env, errors)
    if errors or cfg is None:
        raise ConfigError(errors)
    return cfg


def check(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with the config at ``path``; empty if it is fine."""
    try:
        load(path, env=env)
    except ConfigError as exc:
        return exc.errors
    return []


def _build(
    data: dict[str, Any], source: str, env: Mapping[str, str], errors: list[str]
) -> Config | None:
    """The sections in a fixed order (so the errors come in the order of the file's topics);
    the cross-checks after the sections they need."""
    top = Table(data, "", errors)
    server = read_server(Table(top.raw("server") or {}, "server", errors))
    redis_cfg = read_redis(Table(top.raw("redis") or {}, "redis", errors), env)
    fs = read_freeswitch(Table(top.raw("freeswitch") or {}, "freeswitch", errors))
    queues = read_queues(top.raw("queues"), errors)
    crm = read_crm(Table(top.raw("crm"), "crm", errors)) if top.has("crm") else None
    history = read_history(Table(top.raw("history") or {}, "history", errors))
    numbers_cfg = read_numbers(Table(top.raw("numbers") or {}, "numbers", errors))
    queues = check_callerid(queues, numbers_cfg, errors)
    n_errors = len(errors)
    menus = read_menus(top.raw("ivr"), errors, tts_voice=numbers_cfg.tts_voice)
    check_menus(menus, queues, errors, loops=len(errors) == n_errors)
    check_queue_exits(queues, menus, errors)
    web = read_web(Table(top.raw("web") or {}, "web", errors))
    http = read_http(Table(top.raw("http") or {}, "http", errors))
    monitoring = read_monitoring(
        Table(top.raw("stats") or {}, "stats", errors),
        Table(top.raw("events") or {}, "events", errors),
        Table(top.raw("log") or {}, "log", errors),
    )
    supervisor = read_supervisor(Table(top.raw("supervisor") or {}, "supervisor", errors))
    agents = read_agents(Table(top.raw("agents") or {}, "agents", errors))
    routes_t = Table(top.raw("routes") or {}, "routes", errors)
    default_route = top.string("default_route", None)
    top.unknown()
    routes, routes_e164 = read_routes(routes_t, set(queues), menus, fs.default_region, errors)
    default_route = check_default_route(default_route, set(queues), menus, errors)
    if errors:
        return None
    return Config(
        server=server,
        redis=redis_cfg,
        freeswitch=fs,
        queues=queues,
        routes=routes,
        default_route=default_route,
        source=source,
        routes_e164=routes_e164,
        crm=crm,
        history=history,
        numbers=numbers_cfg,
        ivr=menus,
        web=web,
        http=http,
        monitoring=monitoring,
        supervisor=supervisor,
        agents=agents,
    )
