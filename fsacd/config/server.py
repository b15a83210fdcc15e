"""``[server]``, ``[redis]`` and ``[freeswitch]``: the process, its Redis, its switch.

Also :func:`password`, which reads the event-socket password from where ``[freeswitch]``
says (an environment variable or a file; never the config file itself).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path

from fsacd.config.model import Config, FreeswitchConfig, RedisConfig, ServerConfig, split_address
from fsacd.config.reader import ENV_NAME, ConfigError, Table, region_key
from fsacd.core.keyslot import prefix_problem
from fsacd.core.netaddr import is_loopback_host
from fsacd.core.text import has_control, show

ENV_REDIS_URL = "REDIS_URL"

_CONTROLLER_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
_REDIS_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+sentinel://",
    "rediss+sentinel://",
    *_CLUSTER_SCHEMES,
)


def default_controller_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def read_server(t: Table) -> ServerConfig:
    d = ServerConfig()
    listen = t.string("listen", d.listen)
    try:
        split_address(listen)
    except ValueError as exc:
        t.error("listen", f"{exc}, got {show(listen)}")
        listen = d.listen
    cid = t.string("controller_id", None, max_len=100)
    if cid is not None and not _CONTROLLER_ID.fullmatch(cid):
        t.error("controller_id", f"may only use letters, digits and _ . -, got {show(cid)}")
        cid = None
    out = ServerConfig(
        listen=listen,
        controller_id=cid or default_controller_id(),
        max_calls=t.integer("max_calls", d.max_calls, 1, 100000),
        command_timeout=t.seconds("command_timeout", d.command_timeout, 0.1, 3600),
        drain_timeout=t.seconds("drain_timeout", d.drain_timeout),
        lease=t.seconds("lease", d.lease, 1, 3600),
        recovery_interval=t.seconds("recovery_interval", d.recovery_interval, 0.1, 3600),
        freeswitch_addresses=_networks(t, "freeswitch_addresses"),
        other_sources=t.choice("other_sources", d.other_sources, ("refuse", "limit")),
        source_max_calls=t.integer("source_max_calls", d.source_max_calls, 1, 100000),
        source_max_rate=_rate(t, "source_max_rate", d.source_max_rate),
        realtime_priority=t.integer("realtime_priority", d.realtime_priority, 0, 99),
    )
    if (
        out.freeswitch_addresses == ()
        and out.other_sources == "refuse"
        and not is_loopback_host(split_address(out.listen)[0])
    ):
        t.error(
            "freeswitch_addresses",
            f"is empty while listen ({out.listen}) is beyond loopback: every call would be"
            " refused; list FreeSWITCH's addresses",
        )
    t.unknown()
    return out




#: At most this many entries in ``server.freeswitch_addresses``.
MAX_NETWORKS = 256


def _networks(t: Table, name: str) -> tuple[str, ...] | None:
    """A list of ``IP`` / ``IP/PREFIX`` strings, normalised (``10.0.0.7/24`` → ``10.0.0.0/24``)."""
    if not t.has(name):
        t.raw(name)
        return None
    v = t.raw(name)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        example = '["10.0.0.5", "10.0.1.0/24"]'
        t.error(name, f"must be a list of addresses like {example}, got {show(v)}")
        return None
    if len(v) > MAX_NETWORKS:
        t.error(name, f"must have at most {MAX_NETWORKS} entries, got {len(v)}")
        return None
    out: list[str] = []
    for x in v:
        try:
            out.append(str(ipaddress.ip_network(x.strip(), strict=False)))
        except ValueError:
            t.error(name, f"{show(x)} is not an IP address or network (IP/PREFIX)")
            return None
    return tuple(dict.fromkeys(out))


def _rate(t: Table, name: str, default: float) -> float:
    if not t.has(name):
        t.raw(name)
        return default
    v = t.raw(name)
    ok = isinstance(v, int | float) and not isinstance(v, bool)
    if not ok or not 0.1 <= v <= 100000:  # also refuses nan and inf
        t.error(
            name, f"must be a number of connections per second from 0.1 to 100000, got {show(v)}"
        )
        return default
    return float(v)


def read_redis(t: Table, env: Mapping[str, str]) -> RedisConfig:
    """``[redis]``; ``$REDIS_URL`` in ``env`` wins over ``url``."""
    d = RedisConfig()
    url = t.string("url", None, max_len=1024)
    if url is not None and (not url.startswith(_REDIS_SCHEMES) or any(c.isspace() for c in url)):
        t.error(
            "url",
            "must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"
            " without spaces",
        )
        url = None
    prefix = d.prefix
    if t.has("prefix"):
        v = t.raw("prefix")
        if not isinstance(v, str) or len(v) > 64 or any(c.isspace() for c in v) or has_control(v):
            t.error(
                "prefix",
                f"must be a string of at most 64 characters without spaces, got {show(v)}",
            )
        else:
            prefix = v
    url = env.get(ENV_REDIS_URL) or url
    if url is not None and url.startswith(_CLUSTER_SCHEMES):
        problem = prefix_problem(prefix)
        if problem:  # every key in one slot: the scripts and transactions need it
            t.error("prefix", problem)
    out = RedisConfig(
        url=url,
        data_dir=t.string("data_dir", d.data_dir, max_len=1024),
        prefix=prefix,
    )
    t.unknown()
    return out


def read_freeswitch(t: Table) -> FreeswitchConfig:
    d = FreeswitchConfig()
    if t.has("password"):
        t.raw("password")
        t.error(
            "password",
            "a literal password is not allowed in the config file; put it in the environment"
            " variable named by freeswitch.password_env (default FSACD_ESL_PASSWORD) or in a"
            " file named by freeswitch.password_file",
        )
    inbound = t.string("inbound", d.inbound)
    try:
        split_address(inbound)
    except ValueError as exc:
        t.error("inbound", f"{exc}, got {show(inbound)}")
        inbound = d.inbound
    penv = t.string("password_env", None, max_len=128)
    if penv is not None and not ENV_NAME.fullmatch(penv):
        t.error("password_env", f"must be an environment variable name, got {show(penv)}")
    pfile = t.string("password_file", None, max_len=1024)
    if penv is not None and pfile is not None:
        t.error("password_file", "give either password_env or password_file, not both")
    region = region_key(t, "default_region", d.default_region)
    others = read_other_switches(t, inbound)
    out = FreeswitchConfig(
        inbound=inbound,
        password_env=None if pfile else (penv or d.password_env),
        password_file=pfile,
        default_region=region,
        shared_events=t.boolean("shared_events", d.shared_events),
        other_switches=others,
    )
    t.unknown()
    return out


def read_other_switches(t: Table, inbound: str) -> tuple[str, ...]:
    """``other_switches``: a list of distinct ``"HOST:PORT"``, none of them ``inbound``."""
    v = t.raw("other_switches")
    if v is None:
        return ()
    if not isinstance(v, list) or len(v) > 64:
        t.error("other_switches", f"must be a list of at most 64 \"HOST:PORT\", got {show(v)}")
        return ()
    out: list[str] = []
    seen = {split_address(inbound)}
    for i, item in enumerate(v):
        if not isinstance(item, str):
            t.error("other_switches", f"item {i + 1} must be a string, got {show(item)}")
            continue
        try:
            address = split_address(item)
        except ValueError as exc:
            t.error("other_switches", f"item {i + 1}: {exc}, got {show(item)}")
            continue
        if address in seen:
            t.error("other_switches", f"item {i + 1}: {item} is listed twice (or is inbound)")
            continue
        seen.add(address)
        out.append(item)
    return tuple(out)


def password(cfg: Config, env: Mapping[str, str] | None = None) -> str | None:
    """The event-socket password, read now from the file or environment variable; else None."""
    fs = cfg.freeswitch
    if fs.password_file:
        try:
            return Path(fs.password_file).read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigError(
                [f"freeswitch.password_file: cannot read {fs.password_file}: {exc.strerror}"]
            ) from None
    env = os.environ if env is None else env
    if fs.password_env:
        return env.get(fs.password_env)
    return None
