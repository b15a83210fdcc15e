"""Safe text for FreeSWITCH dial strings and application arguments (pure).

FreeSWITCH splits a bridge string several times (``:_:``, ``|``, ``,`` outside ``[...]``,
then ``{...}``/``[...]`` blocks on ``,`` and ``=``), each pass with its own rules for quotes
(``'``), backslash escapes (``\\,`` but also ``\\n`` → newline) and ``^^X`` delimiter
changes, and it expands ``${var}``/``${api(...)}`` in every application argument. Escaping
that survives all of these passes is fragile, so caller-controlled text is **filtered**, not
escaped: :func:`var_value` keeps only letters, digits and ``space . - _ @ + : /`` and turns
everything else into a space; :func:`app_arg_safe` removes control characters, ``$`` and
backslashes. Nothing that can split, quote, escape or expand survives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

#: Longest value kept in a channel-variable block.
MAX_VALUE = 256
#: Longest application argument kept.
MAX_ARG = 1024

# names like sip_h_X-Fsacd-Call need the hyphen; it cannot split anything inside {} or []
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_VALUE_EXTRA = frozenset(" .-_@+:/")
_SPACES = re.compile(r" {2,}")
# characters a contact (an agent's dial string, set by an operator) must not contain
_CONTACT_FORBIDDEN = frozenset(",|[]{}<>'\"^\\ ")
_CONTACT_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(\([^(){}$\s,|'\"\\]*\))?\}")
#: The expansions a contact may use (docs/cli.md). Anything else could run any FreeSWITCH
#: API function (``${system(...)}``, ``${fsctl(shutdown)}``) or read a variable the caller
#: controls, so it is refused.
CONTACT_VARIABLES = frozenset({"domain", "domain_name", "local_ip_v4", "local_ip_v6"})
CONTACT_FUNCTIONS = frozenset({"sofia_contact", "verto_contact", "group_call"})


def var_value(value: object) -> str:
    """``value`` made safe inside a ``{...}``/``[...]`` block of a dial string.

    Keeps letters and digits (any script, NFC-normalised) and ``space . - _ @ + : /``;
    every other character becomes a space; runs of spaces collapse; ends are trimmed;
    ``:_:`` (the enterprise-originate separator) is broken up; at most :data:`MAX_VALUE`
    characters.
    """
    text = unicodedata.normalize("NFC", str(value))
    kept = "".join(ch if ch.isalnum() or ch in _VALUE_EXTRA else " " for ch in text)
    kept = _SPACES.sub(" ", kept)
    while ":_:" in kept:
        kept = kept.replace(":_:", ":-:")
    return kept[:MAX_VALUE].strip()


def number_value(value: str | None) -> str:
    """A phone number for a dial string: only a leading ``+`` and ASCII digits survive."""
    text = value or ""
    digits = "".join(ch for ch in text if "0" <= ch <= "9")
    return ("+" + digits if text.startswith("+") else digits)[:32]


def var_block(variables: Mapping[str, object], kind: str = "{") -> str:
    """``{a=b,c=d}`` (``kind="{"``) or ``[a=b]`` (``kind="["``); ``""`` when empty.

    Names must match ``[A-Za-z0-9_]+`` (``ValueError`` otherwise); values go through
    :func:`var_value`.
    """
    closers = {"{": "}", "[": "]", "<": ">"}
    if kind not in closers:
        raise ValueError(f"block kind must be one of {sorted(closers)}, got {kind!r}")
    if not variables:
        return ""
    parts = []
    for name, value in variables.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"bad channel variable name {name!r}")
        parts.append(f"{name}={var_value(value)}")
    return kind + ",".join(parts) + closers[kind]


def contact_problem(contact: str) -> str | None:
    """Why ``contact`` can't be one leg of a bridge string, or None if it can.

    A contact is an endpoint such as ``user/1001@pbx.example`` or
    ``sofia/gateway/gw1/+4930123``; the expansions :data:`CONTACT_VARIABLES` (``${name}``)
    and :data:`CONTACT_FUNCTIONS` (``${func(args)}``) are allowed, nothing else.
    """
    if not contact:
        return "is empty"
    if len(contact) > MAX_VALUE:
        return f"is longer than {MAX_VALUE} characters"
    if any(unicodedata.category(ch).startswith("C") for ch in contact):
        return "contains control characters"
    if "/" not in contact and "${" not in contact:
        return "must look like TYPE/ADDRESS, e.g. user/1001@pbx.example"
    for m in _CONTACT_VAR.finditer(contact):
        name, args = m.group(1), m.group(2)
        allowed = CONTACT_FUNCTIONS if args is not None else CONTACT_VARIABLES
        if name not in allowed:
            kind = "function" if args is not None else "variable"
            return (
                f"uses ${{{name}{'(...)' if args is not None else ''}}}: the {kind}s a contact "
                f"may use are {', '.join(sorted(allowed))}"
            )
    rest = _CONTACT_VAR.sub("", contact)
    bad = sorted({ch for ch in rest if ch in _CONTACT_FORBIDDEN or ch == "$"})
    if bad:
        shown = " ".join("space" if ch == " " else ch for ch in bad)
        return f"contains characters not allowed in a dial string leg: {shown}"
    if ":_:" in contact:
        return "contains ':_:'"
    return None


def bridge_string(
    global_vars: Mapping[str, object], legs: Sequence[tuple[Mapping[str, object], str]]
) -> str:
    """``{a=b,c=d}[x=y]contact1,[x=z]contact2``: all legs ring at once.

    ``ValueError`` when there are no legs or a contact is unusable (:func:`contact_problem`).
    """
    if not legs:
        raise ValueError("a bridge needs at least one leg")
    out = []
    for leg_vars, contact in legs:
        problem = contact_problem(contact)
        if problem:
            raise ValueError(f"contact {contact[:80]!r} {problem}")
        out.append(var_block(leg_vars, "[") + contact)
    return var_block(global_vars, "{") + ",".join(out)


#: Delimiters ``multiset`` may use (``^^<d>``), tried in this order.
_MULTISET_DELIMITERS = "|~!#;%,"


def multiset_arg(variables: Mapping[str, object]) -> str:
    """The argument of one ``multiset`` setting all ``variables`` (``^^|a=1|b=2``).

    Names must be plain variable names; values are made safe with :func:`app_arg_safe`. The
    delimiter is the first of :data:`_MULTISET_DELIMITERS` no value contains. ValueError for
    a bad name, or when every delimiter occurs in some value.
    """
    pairs = []
    for name, value in variables.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a channel variable name: {name!r}")
        pairs.append(f"{name}={app_arg_safe(value)}")
    for delim in _MULTISET_DELIMITERS:
        if not any(delim in p for p in pairs):
            return f"^^{delim}" + delim.join(pairs)
    raise ValueError("no multiset delimiter is free in these values")


def app_arg_safe(text: object) -> str:
    """``text`` safe as an application argument (``set``, ``playback``, ...).

    Control characters (CR, LF, tab, ...) become spaces and other invisible characters
    (format characters such as bidi overrides, unassigned code points) are removed; ``$`` and
    ``\\`` are removed (no variable expansion, no escapes), runs of spaces collapse, the ends
    are trimmed, at most :data:`MAX_ARG` characters.
    """
    s = unicodedata.normalize("NFC", str(text))
    s = "".join(_arg_char(ch) for ch in s)
    s = s.replace("$", "").replace("\\", "")
    s = _SPACES.sub(" ", s)
    return s[:MAX_ARG].strip()


def _arg_char(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat == "Cc":
        return " "
    return "" if cat.startswith("C") else ch
