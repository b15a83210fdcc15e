"""docs/redis.md lists every key fsacd builds (checked against fsacd/state/keys.py) and every
key found in Redis after calls, breaks, logouts and contacts matches one of its rows."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from fsacd.standin import PhoneBehaviour as P
from fsacd.state.keys import Keys
from tests.acd_harness import Acd, wait_for
from tests.test_figures import QUEUES, small_shift

DOC = Path(__file__).resolve().parents[1] / "docs" / "redis.md"
#: placeholders whose values may hold a ``:``
_WIDE = {"slot": r"\d{4}-\d\d-\d\dT\d\d:\d\d", "ref": r"(?:h:)?[^:]+"}


def rows() -> list[tuple[str, str]]:
    """(pattern, Keys method) of each row of the overview table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Overview", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        m = re.match(r"\| `([^`]+)`.*\| `Keys\.(\w+)` \|$", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def key_methods() -> set[str]:
    return {n for n, _ in inspect.getmembers(Keys, inspect.isfunction)
            if not n.startswith("_") and n != "pattern"}


def test_every_key_name_of_keys_py_is_documented_with_its_pattern():
    documented = rows()
    names = [m for _, m in documented]
    assert sorted(names) == sorted(set(names)), "a Keys method is listed twice"
    assert set(names) == key_methods(), "docs/redis.md and fsacd/state/keys.py disagree"
    keys = Keys("")
    for pattern, method in documented:
        params = re.findall(r"\{(\w+)\}", pattern)
        assert getattr(keys, method)(*[f"{{{p}}}" for p in params]) == pattern, method


def documented_regex() -> re.Pattern:
    parts = []
    for pattern, _ in rows():
        rx = re.escape(pattern)
        for p in re.findall(r"\{(\w+)\}", pattern):
            rx = rx.replace(re.escape(f"{{{p}}}"), _WIDE.get(p, r"[^:]+"))
        parts.append(rx)
    return re.compile("|".join(f"(?:{p})" for p in parts))


def test_every_key_written_by_a_run_is_documented(redis_url):
    acd = Acd(redis_url, queues=QUEUES)
    try:
        small_shift(acd)
        acd.agent("2001", P.never_answers(), {"support": 1})
        acd.store.set_break("1000", "lunch")
        acd.store.logout("1001")
        wait_for(lambda: all(a["state"] in ("idle", "wrap-up") for a in acd.store.list_agents()),
                 timeout=10, what="agents settled")
        found = sorted(acd.r.scan_iter(match=acd.store.keys.pattern()))
    finally:
        acd.stop()
    rx = documented_regex()
    prefix = acd.store.keys.prefix
    assert len(found) > 20
    undocumented = [k for k in found if not rx.fullmatch(k[len(prefix):])]
    assert undocumented == []
    kinds = {k[len(prefix):].split(":")[0] for k in found}
    assert {"agent", "call", "queue", "stats", "events", "controller"} <= kinds
