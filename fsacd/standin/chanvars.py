"""Channel variables with FreeSWITCH's ordering rules.

Setting a variable deletes it and appends it at the end (so event headers show the most
recently set variables last); an empty value only deletes; names compare case-insensitively.
``push`` appends to an array variable in place (``ARRAY::a|:b``), which is how
``originate_causes`` and ``originated_legs`` accumulate across bridges.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

Value = str | list[str]


def array_string(value: Value) -> str:
    """The plain-text form FreeSWITCH serialises a variable in."""
    if isinstance(value, list):
        return "ARRAY::" + "|:".join(value)
    return value


def parse_array(value: str) -> Value:
    if value.startswith("ARRAY::"):
        return value[7:].split("|:")
    return value


@lru_cache(maxsize=8192)
def _header(name: str) -> str:
    return f"variable_{name}"


class VarStore:
    """Ordered, case-insensitive variable store."""

    def __init__(self) -> None:
        self._d: dict[str, tuple[str, Value]] = {}
        self._h: dict[str, tuple[str, Value]] = {}  # the same, as event headers
        self._headers: list[tuple[str, Value]] | None = None

    def headers(self) -> list[tuple[str, Value]]:
        """``variable_<name>`` event headers in order (built once per change: a channel
        fires many events between two variable changes). Callers must not modify it."""
        if self._headers is None:
            self._headers = list(self._h.values())
        return self._headers

    def get(self, name: str) -> str | None:
        item = self._d.get(name.lower())
        return None if item is None else array_string(item[1])

    def get_raw(self, name: str) -> Value | None:
        item = self._d.get(name.lower())
        return None if item is None else item[1]

    def set(self, name: str, value: str | None) -> None:
        """Delete, then append unless ``value`` is None or empty."""
        key = name.lower()
        self._headers = None
        self._d.pop(key, None)
        self._h.pop(key, None)
        if value is not None and value != "":
            v = parse_array(str(value))
            self._d[key] = (name, v)
            self._h[key] = (_header(name), v)

    def push(self, name: str, value: str) -> None:
        """Append to an array variable in place; a new variable is a plain value."""
        key = name.lower()
        self._headers = None
        item = self._d.get(key)
        if item is None:
            self._d[key] = (name, value)
            self._h[key] = (_header(name), value)
            return
        old = item[1]
        new = [*old, value] if isinstance(old, list) else [old, value]
        self._d[key] = (item[0], new)
        self._h[key] = (_header(item[0]), new)

    def items(self) -> Iterator[tuple[str, Value]]:
        return iter(list(self._d.values()))

    def as_dict(self) -> dict[str, str]:
        return {k: array_string(v) for k, v in self._d.values()}

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._d
