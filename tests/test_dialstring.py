"""fsacd.core.dialstring: caller-controlled text can't change the shape of a bridge or app call."""

import re

import pytest

from fsacd.core.dialstring import (
    MAX_ARG,
    MAX_VALUE,
    app_arg_safe,
    bridge_string,
    contact_problem,
    number_value,
    var_block,
    var_value,
)

HOSTILE = [
    "a,b",
    "a|b",
    "a}b",
    "a]b",
    "a{b",
    "a[b",
    "a<b>c",
    "O'Brien",
    'say "hi"',
    "^^:a=b:c=d",
    "x=y",
    "line\nbreak",
    "cr\rlf",
    "tab\there",
    "nul\x00byte",
    "${uuid}",
    "$${hold_music}",
    "${system(rm -rf /)}",
    "\\,escaped",
    "back\\nslash",
    "enterprise:_:leg",
    "a:_:_:b",
    "},[origination_caller_id_number=666]sofia/gateway/evil/1",
    "x]user/666@evil,[y=z",
    "\u202eevil",
    "bell\x07",
    "   ",
]

# what must never appear in a var_value: every character that splits, quotes, escapes,
# expands or changes the delimiter somewhere in FreeSWITCH's dial-string parsing
DANGEROUS = set(",|{}[]<>'\"^=$\\\n\r\t\x00")


@pytest.mark.parametrize("value", HOSTILE)
def test_var_value_neutralises(value):
    out = var_value(value)
    assert not DANGEROUS & set(out)
    assert ":_:" not in out
    assert out == out.strip()
    assert "  " not in out
    assert all(ch.isprintable() for ch in out)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+49301234567", "+49301234567"),
        ("Alice Example", "Alice Example"),
        ("Müller", "Müller"),
        ("Mu\u0308ller", "Müller"),  # NFC
        ("张伟", "张伟"),
        ("user@example.com", "user@example.com"),
        ("local_stream://moh", "local_stream://moh"),
        ("0b6f6c1e-2b5a-4c2f-9d7e-1f2a3b4c5d6e", "0b6f6c1e-2b5a-4c2f-9d7e-1f2a3b4c5d6e"),
        ("Smith, John", "Smith John"),
        ("O'Brien", "O Brien"),
        ("${uuid}", "uuid"),
        ("a:_:b", "a:-:b"),
        ("a:_:_:b", "a:-:-:b"),
        (15, "15"),
        (True, "True"),
    ],
)
def test_var_value_keeps_ordinary_text(value, expected):
    assert var_value(value) == expected


def test_var_value_is_capped():
    assert len(var_value("a" * 10_000)) == MAX_VALUE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+49 30 1234567", "+49301234567"),
        ("030-1234567", "0301234567"),
        ("+49${x},|]", "+49"),
        (None, ""),
        ("", ""),
        ("anonymous", ""),
    ],
)
def test_number_value(value, expected):
    assert number_value(value) == expected


def test_var_block():
    assert var_block({"a": "b", "c": 1}) == "{a=b,c=1}"
    assert var_block({"x": "y z"}, "[") == "[x=y z]"
    assert var_block({}) == ""
    assert var_block({"n": "a,b|c}d"}) == "{n=a b c d}"


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a,b", "a}", "${x}", "ä", "-a", 5])
def test_var_block_refuses_bad_names(name):
    with pytest.raises(ValueError):
        var_block({name: "v"})


def test_var_block_refuses_bad_kind():
    with pytest.raises(ValueError):
        var_block({"a": "b"}, "(")


def _parse_bridge(s: str) -> tuple[dict, list[tuple[dict, str]]]:
    """A strict parser for what bridge_string may produce (values hold no specials)."""
    m = re.fullmatch(r"(?:\{([^{}\[\]]*)\})?(.*)", s, re.DOTALL)
    assert m
    glob = _parse_vars(m.group(1))
    legs = []
    for leg in re.split(r",(?![^\[]*\])", m.group(2)):
        lm = re.fullmatch(r"(?:\[([^\[\]{}]*)\])?([^\[\]{},|]+)", leg)
        assert lm, leg
        legs.append((_parse_vars(lm.group(1)), lm.group(2)))
    return glob, legs


def _parse_vars(block: str | None) -> dict:
    if not block:
        return {}
    out = {}
    for part in block.split(","):
        name, value = part.split("=", 1)
        out[name] = value
    return out


def test_bridge_string_shape():
    s = bridge_string(
        {"leg_timeout": "15", "ignore_early_media": "true"},
        [({"fsacd_agent": "1001"}, "user/1001@pbx"), ({"fsacd_agent": "1002"}, "user/1002@pbx")],
    )
    assert s == (
        "{leg_timeout=15,ignore_early_media=true}"
        "[fsacd_agent=1001]user/1001@pbx,[fsacd_agent=1002]user/1002@pbx"
    )


def test_bridge_string_without_vars():
    assert bridge_string({}, [({}, "user/1001@pbx")]) == "user/1001@pbx"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_bridge_string_keeps_its_shape_with_hostile_values(hostile):
    legs = [
        ({"origination_caller_id_name": hostile, "fsacd_agent": "1001"}, "user/1001@pbx"),
        ({"origination_caller_id_name": hostile, "fsacd_agent": "1002"}, "user/1002@pbx"),
    ]
    s = bridge_string({"leg_timeout": "15", "x": hostile}, legs)
    glob, parsed = _parse_bridge(s)
    assert set(glob) == {"leg_timeout", "x"}
    assert [c for _, c in parsed] == ["user/1001@pbx", "user/1002@pbx"]
    assert [v["fsacd_agent"] for v, _ in parsed] == ["1001", "1002"]
    assert "$" not in s and "|" not in s and "\n" not in s and ":_:" not in s


def test_bridge_string_needs_legs():
    with pytest.raises(ValueError):
        bridge_string({}, [])


@pytest.mark.parametrize(
    "contact",
    [
        "user/1001@pbx.example",
        "sofia/gateway/gw1/+4930123456",
        "sofia/internal/sip:1001@10.0.0.5:5060",
        "loopback/1001/default",
        "${sofia_contact(1001@pbx.example)}",
        "user/1001@${domain_name}",
    ],
)
def test_good_contacts(contact):
    assert contact_problem(contact) is None
    assert bridge_string({}, [({}, contact)]).endswith(contact)


@pytest.mark.parametrize(
    "contact",
    [
        "",
        "1001",
        "user/1001@pbx,user/666@evil",
        "user/1001@pbx|user/666@evil",
        "user/1001@pbx:_:user/666@evil",
        "[x=y]user/1001@pbx",
        "{x=y}user/1001@pbx",
        "user/1001 @pbx",
        "user/1001@pbx\n",
        "user/'1001'@pbx",
        "user/1001@${sofia_contact(${x})}",
        "${system(id)}",
        "${fsctl(shutdown)}",
        "user/1001@${sip_h_X-Target}",
        "user/${caller_id_number}@pbx",
        "user/$1001",
        "^^:user/1001",
        "user/1001@pbx\\,x",
        "user/" + "1" * 300,
    ],
)
def test_bad_contacts(contact):
    assert contact_problem(contact)
    with pytest.raises(ValueError):
        bridge_string({}, [({}, contact)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fsacd_queue=support", "fsacd_queue=support"),
        ("transfer_ringback=local_stream://moh", "transfer_ringback=local_stream://moh"),
        ("x=${system(reboot)}", "x={system(reboot)}"),
        ("x=$${hold_music}", "x={hold_music}"),
        ("x=a\r\nevent-lock: true", "x=a event-lock: true"),
        ("  padded  ", "padded"),
        ("x=back\\slash", "x=backslash"),
        ("x=\x00\x07bell", "x= bell"),
        ("x=\u202eevil", "x=evil"),
        ("x=Müller", "x=Müller"),
    ],
)
def test_app_arg_safe(text, expected):
    assert app_arg_safe(text) == expected


@pytest.mark.parametrize("value", HOSTILE)
def test_app_arg_safe_hostile(value):
    out = app_arg_safe("fsacd_name=" + value)
    assert "$" not in out and "\\" not in out
    assert all(ch.isprintable() for ch in out)
    assert out == out.strip()


def test_app_arg_safe_is_capped():
    assert len(app_arg_safe("x" * 10_000)) == MAX_ARG


def test_var_block_accepts_sip_header_names():
    assert var_block({"sip_h_X-Fsacd-Call": "c1"}, "[") == "[sip_h_X-Fsacd-Call=c1]"
