"""The screen pop (docs/screen-pop.md): a queue's pop keys, ``[crm]`` and ``[history]``."""

from __future__ import annotations

import re
from typing import Any

from fsacd.config.model import POP_FIELDS, CrmConfig, HistoryConfig, QueueConfig
from fsacd.config.reader import DAY, Table, region_key
from fsacd.core.text import show

_POP_CONTACT_FIELD = re.compile(r"contact\.(\*|\w{1,64})")


def queue_pop(t: Table) -> dict[str, Any]:
    """The screen-pop keys of a queue: region, pop_fields, webhook_*."""
    d = QueueConfig(name="-")
    out: dict[str, Any] = {"region": region_key(t, "region", None)}
    if t.has("pop_fields"):
        v = t.raw("pop_fields")
        fields: list[str] = []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            t.error("pop_fields", f"must be an array of strings, got {show(v)}")
        else:
            for x in v:
                if x not in POP_FIELDS and not _POP_CONTACT_FIELD.fullmatch(x):
                    t.error(
                        "pop_fields",
                        f"unknown field {show(x)}; use {', '.join(POP_FIELDS)},"
                        " contact.FIELD or contact.*",
                    )
                elif x not in fields:
                    fields.append(x)
            out["pop_fields"] = tuple(fields)
    out["webhook_url"] = t.http_url("webhook_url")
    env_name, path = t.secret_source("webhook_secret", None)
    if out["webhook_url"] is not None and env_name is None and path is None:
        t.error(
            "webhook_url",
            "needs webhook_secret_env or webhook_secret_file (webhooks are always signed)",
        )
    out["webhook_secret_env"], out["webhook_secret_file"] = env_name, path
    out["webhook_timeout"] = t.seconds("webhook_timeout", d.webhook_timeout, 0.05, 30)
    return out


def read_crm(t: Table) -> CrmConfig | None:
    url = t.http_url("url")
    if url is None and not t.has("url"):
        t.error("url", 'is required in [crm], e.g. "https://crm.example/api/caller?e164={e164}"')
    if url is not None:
        rest = url.replace("{e164}", "").replace("{digits}", "")
        if rest == url:
            t.error("url", "must contain {e164} or {digits} where the caller number goes")
            url = None
        elif "{" in rest or "}" in rest:
            t.error("url", "may only contain the placeholders {e164} and {digits}")
            url = None
    d = CrmConfig(url="")
    token_env, token_file = t.secret_source("token", None)
    out = CrmConfig(
        url=url or "",
        timeout=t.seconds("timeout", d.timeout, 0.05, 10),
        cache_ttl=t.seconds("cache_ttl", d.cache_ttl, 0, 7 * DAY),
        miss_ttl=t.seconds("miss_ttl", d.miss_ttl, 0, 7 * DAY),
        token_env=token_env,
        token_file=token_file,
    )
    t.unknown()
    return out if url else None


def read_history(t: Table) -> HistoryConfig:
    d = HistoryConfig()
    salt_env, salt_file = t.secret_source("salt", d.salt_env)
    out = HistoryConfig(
        max_entries=t.integer("max_entries", d.max_entries, 0, 1000),
        ttl=t.seconds("ttl", d.ttl, 0, 3650 * DAY),
        salt_env=salt_env,
        salt_file=salt_file,
    )
    t.unknown()
    return out
