"""FreeSWITCH string helpers: argument splitting, brackets, variable expansion.

These follow ``switch_separate_string`` / ``switch_find_end_paren`` /
``switch_channel_expand_variables`` closely because application arguments and dial strings
are parsed by them in real FreeSWITCH, and their quirks (quotes, ``\\`` escapes, the
``^^<c>`` alternative delimiter) decide what a controller's command really means.
"""

from __future__ import annotations

import re
from collections.abc import Callable

ESCAPE_META = "\\"
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def _cleanup(part: str, delim: str) -> str:
    """Strip quotes, escapes and surrounding spaces (cleanup_separated_string)."""
    if ESCAPE_META not in part and "'" not in part:  # most parts: only the spaces go
        return part.strip(" ")
    i = 0
    n = len(part)
    while i < n and part[i] == " ":
        i += 1
    dest: list[str] = []
    end = 0
    inside = False
    while i < n:
        ch = part[i]
        esc = False
        if ch == ESCAPE_META and i + 1 < n:
            e = part[i + 1]
            un = _UNESCAPE.get(e, e)
            if e in ("'", '"', ESCAPE_META) or (delim and e == delim) or un != e:
                i += 1
                dest.append(un)
                end = len(dest)
                esc = True
        if not esc:
            if ch == "'" and (inside or "'" in part[i + 1 :]):
                inside = not inside
                if inside:
                    end = len(dest)
            else:
                dest.append(ch)
                if ch != " " or inside:
                    end = len(dest)
        i += 1
    return "".join(dest[:end]) if end or dest else ""


def separate_string(buf: str | None, delim: str, limit: int = 1024) -> list[str]:
    """Split like ``switch_separate_string``: quotes group, ``\\`` escapes, ``^^<c>`` delimiter.

    At most ``limit`` parts: the last part keeps the unsplit rest, as in FreeSWITCH.
    """
    if not buf:
        return []
    if buf.startswith("^^") and len(buf) > 3:
        delim = buf[2]
        buf = buf[3:]
    parts: list[str] = []
    if delim == " ":
        # separate_string_blank_delim: a part starts at START; the last allowed part keeps
        # the rest of the string unsplit.
        bounds: list[list[int]] = []
        i, n = 0, len(buf)
        state = "start"
        inside = False
        while i < n and len(bounds) <= limit:
            c = buf[i]
            if state == "start":
                if len(bounds) == limit:
                    break
                bounds.append([i, n])
                if len(bounds) == limit:
                    break
                state = "skip_initial"
            elif state == "skip_initial":
                if c == " ":
                    i += 1
                else:
                    state = "find"
            elif state == "find":
                if c == ESCAPE_META:
                    i += 1
                elif c == "'":
                    inside = not inside
                elif c == " " and not inside:
                    bounds[-1][1] = i
                    state = "skip_end"
                i += 1
            else:  # skip_end
                if c == " ":
                    i += 1
                else:
                    state = "start"
        return [_cleanup(buf[a:b], "") for a, b in bounds]
    i, n = 0, len(buf)
    start = 0
    inside = False
    parts.append("")
    while i < n:
        c = buf[i]
        if c == ESCAPE_META:
            i += 2
            continue
        if c == "'" and (inside or "'" in buf[i + 1 :]):
            inside = not inside
        elif c == delim and not inside and len(parts) < limit:
            parts[-1] = buf[start:i]
            parts.append("")
            start = i + 1
        i += 1
    parts[-1] = buf[start:]
    return [_cleanup(p, delim) for p in parts]


def find_end_paren(s: str, start: int, open_c: str, close_c: str) -> int:
    """Index of the bracket closing the one at ``start`` (nesting and quotes aware), or -1."""
    depth = 0
    quote = False
    i = start
    while i < len(s):
        c = s[i]
        if c == ESCAPE_META:
            i += 2
            continue
        if c == "'":
            quote = not quote
        elif not quote:
            if c == open_c:
                depth += 1
            elif c == close_c:
                depth -= 1
                if depth == 0:
                    return i
        i += 1
    return -1


def parse_var_block(block: str, delim: str = ",") -> list[tuple[str, str]]:
    """``a=1,b='x, y'`` → pairs (switch_event_create_brackets' inner loop)."""
    if block.startswith("^^") and len(block) > 2:
        delim = block[2]
        block = block[3:]
    out: list[tuple[str, str]] = []
    for item in separate_string(block, delim):
        kv = separate_string(item, "=", 2)
        if len(kv) == 2 and kv[0]:
            out.append((kv[0], kv[1]))
    return out


_VAR_RE = re.compile(r"\$\$?\{([^{}]*)\}")


def expand_variables(text: str, lookup: Callable[[str], str | None]) -> str:
    """Replace ``${name}`` by channel variables (missing → empty), ``$${name}`` likewise."""
    if "${" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if "(" in name:  # ${api(args)} is not supported by the stand-in: keep verbatim
            return m.group(0)
        return lookup(name) or ""

    prev = None
    out = text
    for _ in range(8):  # nested expansions
        if out == prev or "${" not in out:
            break
        prev = out
        out = _VAR_RE.sub(sub, out)
    return out


def is_true(value: str | None) -> bool:
    """``switch_true``: yes/on/true/t/enabled/active/allow or a non-zero number."""
    if value is None:
        return False
    v = value.strip().lower()
    if v in ("yes", "on", "true", "t", "enabled", "active", "allow"):
        return True
    try:
        return int(v) != 0
    except ValueError:
        return False


def is_false(value: str | None) -> bool:
    """``switch_false``: no/off/false/f/disabled/inactive/disallow or 0."""
    if value is None:
        return False
    v = value.strip().lower()
    if v in ("no", "off", "false", "f", "disabled", "inactive", "disallow"):
        return True
    try:
        return int(v) == 0
    except ValueError:
        return False


def atoi(text: str | None, default: int = 0) -> int:
    """C ``atoi``: leading optional sign and digits, else ``default``."""
    if not text:
        return default
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else default
