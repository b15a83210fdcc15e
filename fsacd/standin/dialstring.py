"""Dial strings as ``bridge`` and ``originate`` read them.

``{a=1,b='x, y'}[c=3]sofia/x,[c=4]user/y|loopback/z``: ``{}`` variables for every leg,
``[]`` variables for one leg, ``,`` rings legs at once, ``|`` tries the next group when a group
failed. Quotes group, ``\\,`` is a literal comma, ``^^:`` switches the variable separator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fsstrings import find_end_paren, parse_var_block, separate_string

_QUOTED_COMMA = "\x01"
_UNQUOTED_COMMA = "\x02"


@dataclass
class DialLeg:
    endpoint: str
    variables: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DialString:
    variables: list[tuple[str, str]]
    groups: list[list[DialLeg]]


class DialStringError(ValueError):
    """The dial string cannot be parsed (FreeSWITCH logs "Parse Error!")."""


def _protect_bracket_commas(group: str) -> str:
    """Mark commas inside ``[...]`` so the leg split leaves them alone (as FreeSWITCH does)."""
    out = list(group)
    end = -1
    alt = False
    quoted = False
    for i, c in enumerate(out):
        if end < 0 and c == "[":
            end = find_end_paren(group, i, "[", "]")
            alt = group[i + 1 : i + 3] == "^^"
            quoted = False
        if c == "'":
            quoted = not quoted
        if 0 <= i < end and c == "," and (i == 0 or group[i - 1] != "\\"):
            out[i] = _QUOTED_COMMA if (quoted or alt) else _UNQUOTED_COMMA
        if i == end:
            end = -1
    return "".join(out)


def parse_dialstring(data: str) -> DialString:
    s = data.strip()
    gvars: list[tuple[str, str]] = []
    while s.startswith("{"):
        end = find_end_paren(s, 0, "{", "}")
        if end < 0:
            raise DialStringError(f"unbalanced {{}} in {data!r}")
        gvars.extend(parse_var_block(s[1:end]))
        s = s[end + 1 :].lstrip(" ")
    groups: list[list[DialLeg]] = []
    for group in separate_string(s, "|"):
        legs: list[DialLeg] = []
        for part in separate_string(_protect_bracket_commas(group), ","):
            part = part.lstrip(" ")
            lvars: list[tuple[str, str]] = []
            while part.startswith("["):
                end = find_end_paren(part, 0, "[", "]")
                if end < 0:
                    raise DialStringError(f"unbalanced [] in {data!r}")
                inner = part[1:end].replace(_QUOTED_COMMA, ",")
                if inner.startswith("^^"):
                    lvars.extend(parse_var_block(inner.replace(_UNQUOTED_COMMA, ",")))
                else:
                    lvars.extend(parse_var_block(inner, _UNQUOTED_COMMA))
                part = part[end + 1 :].lstrip(" ")
            part = part.replace(_QUOTED_COMMA, ",").replace(_UNQUOTED_COMMA, ",")
            if not part:
                raise DialStringError(f"empty leg in {data!r}")
            legs.append(DialLeg(part, lvars))
        if legs:
            groups.append(legs)
    if not groups:
        raise DialStringError(f"no endpoint in {data!r}")
    return DialString(gvars, groups)
