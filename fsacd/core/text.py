"""How values appear in error messages (pure): the config's and the IVR validators' wording.

``show(2.5)`` → ``2.5``, ``show("a")`` → ``"a"`` (escaped, at most 80 characters),
``show({})`` → ``a table``; ``quote_key("bad name")`` → ``"bad name"`` as TOML would quote it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def show(value: Any) -> str:
    """A TOML value as an error message shows it (strings quoted and escaped, at most 80)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value[:80].encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def quote_key(key: str) -> str:
    """A TOML key as it is written in a dotted path: bare if it can be, else quoted."""
    return key if _BARE_KEY.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'


def has_control(text: str) -> bool:
    """True if ``text`` has a control (or other ``C*`` category) character."""
    return any(unicodedata.category(ch).startswith("C") for ch in text)
