"""``[web]``, ``[http]``, ``[stats]``, ``[events]``, ``[log]``: monitoring (docs/monitoring.md)."""

from __future__ import annotations

import zoneinfo

from fsacd.config.model import HttpConfig, MonitoringConfig, Thresholds, WebConfig, split_address
from fsacd.config.reader import DAY, Table
from fsacd.core.text import show

LOG_FORMATS = ("text", "json")


def _address(t: Table, name: str, default: str | None) -> str | None:
    value = t.string(name, default, max_len=300)
    if value is None:
        return None
    try:
        split_address(value)
    except ValueError as exc:
        t.error(name, f"{exc}, got {show(value)}")
        return default
    return value


def read_web(t: Table) -> WebConfig:
    d = WebConfig()
    env_name, path = t.secret_source("token", d.token_env)
    th = Table(t.raw("thresholds") or {}, t.key("thresholds"), t.errors)
    dt = Thresholds()
    thresholds = Thresholds(
        wait_warn=th.seconds("wait_warn", dt.wait_warn),
        wait_alert=th.seconds("wait_alert", dt.wait_alert),
        sl_warn=_fraction(th, "sl_warn", dt.sl_warn),
        sl_alert=_fraction(th, "sl_alert", dt.sl_alert),
        waiting_warn=th.integer("waiting_warn", dt.waiting_warn, 0, 1_000_000),
        waiting_alert=th.integer("waiting_alert", dt.waiting_alert, 0, 1_000_000),
    )
    th.unknown()
    out = WebConfig(
        listen=_address(t, "listen", d.listen) or d.listen,
        token_env=env_name,
        token_file=path,
        refresh=t.seconds("refresh", d.refresh, 0.2, 60),
        title=t.string("title", d.title, max_len=80) or d.title,
        thresholds=thresholds,
    )
    t.unknown()
    return out


def _fraction(t: Table, name: str, default: float) -> float:
    if not t.has(name):
        return default
    v = t.raw(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        t.error(name, f"must be a fraction from 0 to 1, got {show(v)}")
        return default
    return float(v)


def read_http(t: Table) -> HttpConfig:
    out = HttpConfig(listen=_address(t, "listen", None))
    t.unknown()
    return out


def read_monitoring(stats: Table, events: Table, log: Table) -> MonitoringConfig:
    d = MonitoringConfig()
    tz = stats.string("timezone", d.timezone, max_len=64) or d.timezone
    if tz != "local":
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            stats.error(
                "timezone", f"must be an IANA time zone (Europe/Berlin) or local, got {show(tz)}"
            )
            tz = d.timezone
    out = MonitoringConfig(
        timezone=tz,
        events_max_length=events.integer("max_length", d.events_max_length, 1000, 100_000_000),
        events_max_age=events.seconds("max_age", d.events_max_age, 0, 3650 * DAY),
        log_format=log.choice("format", d.log_format, LOG_FORMATS),
    )
    for t in (stats, events, log):
        t.unknown()
    return out
