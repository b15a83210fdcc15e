"""Reading TOML tables: :class:`ConfigError`, the :class:`Table` walker and shared value kinds.

Every reader appends its problems to one ``errors`` list, one line each, naming the key
(``queues.support.ring_timeout: must be ...``), and goes on with the default, so that one
:class:`ConfigError` lists everything that is wrong. A key nobody read is reported by
:meth:`Table.unknown`, with a suggestion for near misses.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from typing import Any, overload

from fsacd.core import numbers
from fsacd.core.text import has_control, quote_key, show

DAY = 86400.0
#: What ``*_env`` keys may name.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HTTP_SCHEMES = ("http://", "https://")
#: The number error messages give as an example of E.164.
E164_EXAMPLE = "+4922129191999"


class ConfigError(Exception):
    """The config can't be used; ``errors`` lists every problem, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML ``text`` → its top table; :class:`ConfigError` if it is not TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None


class Table:
    """Typed access to one TOML table; remembers which keys were read, for unknown-key errors."""

    def __init__(self, data: Any, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        self.seen: set[str] = set()
        if isinstance(data, dict):
            self.data = data
        else:
            self.data = {}
            errors.append(f"{path}: must be a table, got {show(data)}")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> None:
        self.errors.append(f"{self.key(name)}: {problem}")

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def string(self, name: str, default: str | None, *, max_len: int = 256) -> str | None:
        if name not in self.data:
            self.seen.add(name)
            return default
        v = self.raw(name)
        if not isinstance(v, str):
            self.error(name, f"must be a string, got {show(v)}")
            return default
        if not v.strip():
            self.error(name, "must not be empty")
            return default
        if len(v) > max_len:
            self.error(name, f"must be at most {max_len} characters, got {len(v)}")
            return default
        if has_control(v):
            self.error(name, "must not contain control characters")
            return default
        return v

    def integer(self, name: str, default: int, lo: int, hi: int, unit: str = "") -> int:
        if name not in self.data:
            self.seen.add(name)
            return default
        v = self.raw(name)
        what = f"a whole number of {unit}" if unit else "a whole number"
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            self.error(name, f"must be {what} from {lo} to {hi}, got {show(v)}")
            return default
        return v

    def seconds(self, name: str, default: float, lo: float = 0, hi: float = DAY) -> float:
        if name not in self.data:
            self.seen.add(name)
            return default
        v = self.raw(name)
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or not lo <= v <= hi:
            self.error(
                name, f"must be a number of seconds from {num(lo)} to {num(hi)}, got {show(v)}"
            )
            return default
        return float(v)

    def boolean(self, name: str, default: bool) -> bool:
        if not self.has(name):
            self.raw(name)
            return default
        v = self.raw(name)
        if not isinstance(v, bool):
            self.error(name, f"must be true or false, got {show(v)}")
            return default
        return v

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        v = self.string(name, default, max_len=64)
        if v not in choices:
            self.error(name, f"must be one of {', '.join(choices)}, got {show(v)}")
            return default
        return v

    def http_url(self, name: str) -> str | None:
        url = self.string(name, None, max_len=2048)
        if url is not None and (not url.startswith(_HTTP_SCHEMES) or any(c.isspace() for c in url)):
            self.error(name, "must be an http:// or https:// URL without spaces")
            return None
        return url

    def secret_source(self, stem: str, default_env: str | None) -> tuple[str | None, str | None]:
        """``{stem}_env`` / ``{stem}_file``: at most one; returns ``(env name, file)``.

        Secrets are never in the file itself: these keys name where they are read from.
        """
        env_name = self.string(f"{stem}_env", None, max_len=128)
        if env_name is not None and not ENV_NAME.fullmatch(env_name):
            self.error(f"{stem}_env", f"must be an environment variable name, got {show(env_name)}")
            env_name = None
        path = self.string(f"{stem}_file", None, max_len=1024)
        if env_name is not None and path is not None:
            self.error(f"{stem}_file", f"give either {stem}_env or {stem}_file, not both")
        if path is not None:
            return None, path
        return env_name or default_env, None

    def unknown(self) -> None:
        """Report every key that was not read, with a suggestion for near misses."""
        for name in self.data:
            if name not in self.seen:
                near = difflib.get_close_matches(name, sorted(self.seen), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                self.errors.append(f"{self.key(quote_key(name))}: unknown key{hint}")


@overload
def region_key(t: Table, name: str, default: str) -> str: ...
@overload
def region_key(t: Table, name: str, default: None) -> str | None: ...
def region_key(t: Table, name: str, default: str | None) -> str | None:
    """A region phonenumbers supports (ISO 3166 alpha-2, any case), in upper case."""
    region = t.string(name, default, max_len=8)
    if region is not None and not numbers.supported_region(region.upper()):
        t.error(
            name,
            f"must be an ISO 3166 alpha-2 region phonenumbers supports (e.g. DE, US, GB),"
            f" got {show(region)}",
        )
        return default
    return region.upper() if region is not None else None


def e164_key(t: Table, name: str, example: str = E164_EXAMPLE) -> str | None:
    """An E.164 number given as ``+...`` (stored normalised), else None with an error."""
    v = t.string(name, None, max_len=32)
    if v is None:
        return None
    n = numbers.normalise(v, numbers.DEFAULT_REGION) if v.startswith("+") else None
    if n is None or n.e164 is None:
        t.error(name, f"must be a valid E.164 number like {example}, got {show(v)}")
        return None
    return n.e164


def num(x: float) -> str:
    """A bound in a message: ``3600``, not ``3600.0``."""
    return str(int(x)) if float(x).is_integer() else str(x)
