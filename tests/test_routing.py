"""fsacd.core.routing: target resolution and call priority."""

import pytest

from fsacd.config import load_text
from fsacd.core.routing import (
    Priority,
    RouteError,
    Target,
    call_priority,
    parse_target,
    priority,
    resolve,
)

CONFIG = """
default_route = "queue:support"

[routes]
"5000" = "queue:sales"
"+49301234567" = "queue:vip"

[queues.support]
[queues.sales]
priority = 5
[queues.vip]
priority = 100
"""


@pytest.fixture
def cfg():
    return load_text(CONFIG, env={})


@pytest.fixture
def no_default():
    return load_text(CONFIG.replace('default_route = "queue:support"', ""), env={})


def test_channel_variable_wins(cfg):
    t = resolve({"variable_fsacd_route": "queue:vip"}, "5000", cfg)
    assert t == Target(kind="queue", name="vip", source="channel")


def test_route_by_destination(cfg):
    assert resolve({}, "5000", cfg) == Target("queue", "sales", "route")


def test_route_by_same_number_in_another_form(cfg):
    assert resolve({}, "030 1234567", cfg) == Target("queue", "vip", "route")
    assert resolve({}, "0049301234567", cfg) == Target("queue", "vip", "route")


def test_default_route(cfg):
    assert resolve({}, "9999", cfg) == Target("queue", "support", "default")
    assert resolve({}, "", cfg) == Target("queue", "support", "default")
    assert resolve({"variable_fsacd_route": "  "}, "9999", cfg).name == "support"


def test_no_route(no_default):
    r = resolve({}, "9999", no_default)
    assert isinstance(r, RouteError)
    assert "no route" in r.reason


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("queue:nope", "no queue named 'nope'"),
        ("ivr:menu", "no IVR menu named 'menu'"),
        ("voicemail:1001", "unknown target kind"),
        ("support", "malformed target"),
        ("queue:", "malformed queue name"),
        ("queue:a b", "malformed queue name"),
        ("queue:sales,ring", "malformed queue name"),
        ("queue:" + "x" * 100, "malformed queue name"),
        ("QUEUE:support", "malformed target"),
        ("queue:sup\nport", "malformed queue name"),
        ("queue:${x}", "malformed queue name"),
    ],
)
def test_bad_channel_route_is_an_error_not_a_fallback(cfg, value, words):
    r = resolve({"variable_fsacd_route": value}, "5000", cfg)
    assert isinstance(r, RouteError)
    assert "fsacd_route" in r.reason
    assert words in r.reason


def test_resolve_never_raises(cfg):
    class Broken(dict):
        def get(self, *a):
            raise RuntimeError("boom")

    r = resolve(Broken(), "5000", cfg)
    assert isinstance(r, RouteError)
    assert resolve({}, None, cfg) == Target("queue", "support", "default")


def test_reason_is_bounded(cfg):
    r = resolve({"variable_fsacd_route": "queue:" + "x" * 10_000}, "", cfg)
    assert isinstance(r, RouteError)
    assert len(r.reason) < 200


def test_parse_target():
    assert parse_target("queue:a", {"a"}) == Target("queue", "a")
    assert parse_target(" queue:a ", {"a"}) == Target("queue", "a")
    assert isinstance(parse_target("queue:b", {"a"}), RouteError)
    assert isinstance(parse_target(5, {"a"}), RouteError)
    assert parse_target("ivr:m", {"a"}, {"m"}) == Target("ivr", "m")
    assert isinstance(parse_target("ivr:a", {"a"}, {"m"}), RouteError)
    assert isinstance(parse_target("ivr:m", {"a"}), RouteError)


IVR_CONFIG = """
default_route = "ivr:main"

[routes]
"5000" = "ivr:billing"
"5001" = "queue:support"

[queues.support]

[ivr.main]
prompt = "ivr/main.wav"
options = { "1" = "queue:support", "2" = "ivr:billing" }

[ivr.billing]
prompt = "ivr/billing.wav"
options = { "1" = "queue:support" }
"""


def test_ivr_targets_route_to_menus():
    cfg = load_text(IVR_CONFIG, env={})
    assert resolve({}, "5000", cfg) == Target("ivr", "billing", "route")
    assert resolve({}, "5001", cfg) == Target("queue", "support", "route")
    assert resolve({}, "9999", cfg) == Target("ivr", "main", "default")
    assert resolve({"variable_fsacd_route": "ivr:main"}, "5001", cfg) == Target(
        "ivr", "main", "channel"
    )
    r = resolve({"variable_fsacd_route": "ivr:nope"}, "5001", cfg)
    assert isinstance(r, RouteError) and "no IVR menu named 'nope'" in r.reason
    # a queue and a menu may share a name; the kind decides
    r = resolve({"variable_fsacd_route": "ivr:support"}, "5001", cfg)
    assert isinstance(r, RouteError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Priority(5)),
        ("", Priority(5)),
        ("0", Priority(0)),
        ("7", Priority(7)),
        (" 1000 ", Priority(1000)),
        ("0010", Priority(10)),
    ],
)
def test_priority(cfg, value, expected):
    vars_ = {} if value is None else {"variable_fsacd_priority": value}
    assert call_priority(vars_, cfg.queues["sales"]) == expected
    assert priority(vars_, cfg.queues["sales"]) == expected.value


@pytest.mark.parametrize("value", ["1001", "-1", "high", "1.5", "1e3", "٣", "99999999999999999999"])
def test_bad_priority_falls_back_with_a_warning(cfg, value, caplog):
    p = call_priority({"variable_fsacd_priority": value}, cfg.queues["vip"])
    assert p.value == 100
    assert p.warning and "using the queue's priority 100" in p.warning
    with caplog.at_level("WARNING"):
        assert priority({"variable_fsacd_priority": value}, cfg.queues["vip"]) == 100
    assert "fsacd_priority" in caplog.text
