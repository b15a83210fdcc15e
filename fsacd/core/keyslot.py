"""Redis Cluster's hash-tag rule for fsacd's key prefix (plain text: no redis here).

A cluster puts every key in one of 16384 slots by the text between the key's first ``{`` and
the next ``}`` (its hash tag) when there is such text, else by the whole key. fsacd's scripts and
transactions touch several keys at once, which a cluster allows only within one slot, so on a
cluster the prefix must carry a hash tag: ``{fsacd}:agent:1001`` hashes like ``fsacd``.
"""

from __future__ import annotations

#: What a prefix for a cluster looks like (the default ``fsacd:`` with a hash tag).
EXAMPLE_PREFIX = "{fsacd}:"


def hash_tag(prefix: str) -> str | None:
    """The hash tag of every key starting with ``prefix``, or None when keys under it would
    not share one slot (no ``{``, no ``}`` after it, or an empty ``{}``)."""
    start = prefix.find("{")
    if start < 0:
        return None
    end = prefix.find("}", start + 1)
    if end <= start + 1:
        return None
    return prefix[start + 1 : end]


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be used on a Redis Cluster (one line), or None."""
    if hash_tag(prefix) is not None:
        return None
    return (
        "on a Redis Cluster all of fsacd's keys must share one slot: the prefix needs a hash"
        f' tag, e.g. prefix = "{EXAMPLE_PREFIX}" (got "{prefix}")'
    )
