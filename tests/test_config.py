"""fsacd.config: defaults, validation messages naming the key, all errors at once."""

import dataclasses
from pathlib import Path

import pytest

from fsacd import config
from fsacd.config import ConfigError, check, load, load_text, password, resolve_path
from fsacd.core.strategies import STRATEGIES

EXAMPLE = Path(__file__).resolve().parents[1] / "fsacd" / "examples" / "fsacd.toml"
MINIMAL = "[queues.support]\n"


def errors_of(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_text(text, env={} if env is None else env)
    assert str(exc.value) == "\n".join(exc.value.errors)
    return exc.value.errors


def test_defaults():
    cfg = load_text(MINIMAL, env={})
    assert cfg.server.listen == "127.0.0.1:8084"
    assert cfg.server.listen_address == ("127.0.0.1", 8084)
    assert cfg.server.controller_id  # hostname-pid
    assert cfg.server.max_calls == 1000
    assert cfg.server.command_timeout == 10
    assert cfg.server.drain_timeout == 30
    assert cfg.redis == config.RedisConfig(url=None, data_dir="var", prefix="fsacd:")
    assert cfg.freeswitch.inbound_address == ("127.0.0.1", 8021)
    assert cfg.freeswitch.password_env == "FSACD_ESL_PASSWORD"
    assert cfg.freeswitch.password_file is None
    assert cfg.freeswitch.default_region == "DE"
    assert cfg.routes == {}
    assert cfg.default_route is None
    q = cfg.queues["support"]
    assert q == config.QueueConfig(name="support")
    assert (q.strategy, q.ring_timeout, q.max_wait, q.overflow, q.wrap_up) == (
        "first-available",
        15,
        0,
        None,
        5,
    )
    assert (q.max_no_answer, q.no_answer_delay, q.busy_delay, q.reject_delay) == (3, 10, 10, 30)
    assert (q.moh, q.priority, q.number, q.display_name) == ("local_stream://moh", 0, None, None)


def test_frozen():
    cfg = load_text(MINIMAL, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.queues["support"].ring_timeout = 3  # type: ignore[misc]


FULL = """
default_route = "queue:support"

[server]
listen = "[::1]:9000"
controller_id = "acd-1"
max_calls = 50
command_timeout = 2.5
drain_timeout = 0

[redis]
url = "redis://localhost:6379/3"
data_dir = "/tmp/fsacd"
prefix = "acd:"

[freeswitch]
inbound = "10.0.0.1:8021"
password_file = "/etc/fsacd/esl-password"
default_region = "us"

[routes]
"5000" = "queue:support"
"+12015550123" = "queue:sales"

[queues.support]
strategy = "ring-all"
ring_timeout = 20
max_wait = 90.5
overflow = "sales"
wrap_up = 0
max_no_answer = 0
no_answer_delay = 1.5
busy_delay = 0
reject_delay = 60
moh = "/usr/share/sounds/moh.wav"
priority = 1000
number = "+1 201 555 0123"
display_name = "Support"

[queues.sales]
"""


def test_every_key():
    cfg = load_text(FULL, env={})
    assert cfg.server == config.ServerConfig("[::1]:9000", "acd-1", 50, 2.5, 0)
    assert cfg.server.listen_address == ("::1", 9000)
    assert cfg.redis == config.RedisConfig("redis://localhost:6379/3", "/tmp/fsacd", "acd:")
    assert cfg.freeswitch == config.FreeswitchConfig(
        "10.0.0.1:8021", None, "/etc/fsacd/esl-password", "US"
    )
    assert cfg.routes == {"5000": "queue:support", "+12015550123": "queue:sales"}
    assert cfg.default_route == "queue:support"
    q = cfg.queues["support"]
    assert q == config.QueueConfig(
        "support",
        "ring-all",
        20,
        90.5,
        "sales",
        0.0,
        0,
        1.5,
        0.0,
        60.0,
        "/usr/share/sounds/moh.wav",
        1000,
        "+12015550123",
        "Support",
    )
    assert isinstance(q.max_wait, float) and isinstance(q.ring_timeout, int)


def test_redis_url_env_overrides():
    cfg = load_text('[redis]\nurl = "redis://a/1"\n' + MINIMAL, env={"REDIS_URL": "redis://b/2"})
    assert cfg.redis.url == "redis://b/2"
    assert load_text(MINIMAL, env={"REDIS_URL": "unix:///tmp/r.sock"}).redis.url == (
        "unix:///tmp/r.sock"
    )
    assert load_text('[redis]\nurl = "redis://a/1"\n' + MINIMAL, env={}).redis.url == "redis://a/1"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_is_accepted(strategy):
    cfg = load_text(f'[queues.q]\nstrategy = "{strategy}"\n', env={})
    assert cfg.queues["q"].strategy == strategy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[queues.support]\nring_timeout = 2.5\n",
            "queues.support.ring_timeout: must be a whole number of seconds from 1 to 3600,"
            " got 2.5",
        ),
        ("[queues.support]\nring_timeout = 0\n", "queues.support.ring_timeout: must be"),
        ("[queues.support]\nring_timeout = true\n", "got true"),
        ('[queues.support]\nring_timeout = "15"\n', 'got "15"'),
        ("[queues.support]\nmax_wait = -1\n", "queues.support.max_wait: must be a number"),
        ("[queues.support]\nmax_wait = nan\n", "got nan"),
        ("[queues.support]\nwrap_up = inf\n", "queues.support.wrap_up:"),
        ("[queues.support]\nmax_no_answer = 1.0\n", "queues.support.max_no_answer:"),
        ("[queues.support]\nno_answer_delay = -0.5\n", "queues.support.no_answer_delay:"),
        ("[queues.support]\nbusy_delay = 100000\n", "queues.support.busy_delay:"),
        ('[queues.support]\nreject_delay = "30s"\n', "queues.support.reject_delay:"),
        ("[queues.support]\npriority = 1001\n", "queues.support.priority: must be a whole"),
        ("[queues.support]\npriority = -1\n", "queues.support.priority:"),
        ('[queues.support]\nstrategy = "ringall"\n', "queues.support.strategy: must be one of"),
        ('[queues.support]\nmoh = ""\n', "queues.support.moh: must not be empty"),
        ('[queues.support]\nmoh = "${hold_music}"\n', "queues.support.moh:"),
        ('[queues.support]\nmoh = "a\\nb"\n', "control characters"),
        ('[queues.support]\nnumber = "030 1234567"\n', "queues.support.number: must be a valid"),
        ('[queues.support]\nnumber = "+49 30"\n', "queues.support.number:"),
        ("[queues.support]\ndisplay_name = 5\n", "queues.support.display_name: must be a string"),
        ('[queues.support]\noverflow = "support"\n', "queues.support.overflow: a queue can't"),
        ('[queues.support]\noverflow = "nope"\n', 'queues.support.overflow: no queue named "nope"'),
        ("[queues.support]\nring_timout = 3\n", "queues.support.ring_timout: unknown key"),
        ('[queues."bad name"]\n', 'queues."bad name": a queue name must be'),
        ("[queues." + "x" * 65 + "]\n", "a queue name must be"),
        ("queues = 3\n", "queues: must be a table"),
        ("[queues.support]\n[queues]\nother = 3\n", "queues.other: must be a table"),
        ("[server]\n", "queues: at least one queue is required"),
        ("[queues]\n", "queues: at least one queue is required"),
        ('[server]\nlisten = "8084"\n' + MINIMAL, "server.listen: must be HOST:PORT"),
        ('[server]\nlisten = "host:70000"\n' + MINIMAL, "server.listen: port must be"),
        ('[server]\nlisten = "::1:8084"\n' + MINIMAL, "server.listen:"),
        ('[server]\ncontroller_id = "a b"\n' + MINIMAL, "server.controller_id:"),
        ("[server]\nmax_calls = 0\n" + MINIMAL, "server.max_calls:"),
        ("[server]\ncommand_timeout = 0\n" + MINIMAL, "server.command_timeout:"),
        ("[server]\nport = 1\n" + MINIMAL, "server.port: unknown key"),
        ('[redis]\nurl = "http://x"\n' + MINIMAL, "redis.url: must be a redis://"),
        ('[redis]\nprefix = "a b"\n' + MINIMAL, "redis.prefix:"),
        ('[redis]\nhost = "x"\n' + MINIMAL, "redis.host: unknown key"),
        ('[freeswitch]\ndefault_region = "XX"\n' + MINIMAL, "freeswitch.default_region:"),
        ('[freeswitch]\ndefault_region = "DEU"\n' + MINIMAL, "freeswitch.default_region:"),
        ('[freeswitch]\ninbound = "x"\n' + MINIMAL, "freeswitch.inbound:"),
        ('[freeswitch]\npassword_env = "A-B"\n' + MINIMAL, "freeswitch.password_env:"),
        ('[freeswitch]\nother_switches = "a:1"\n' + MINIMAL, "freeswitch.other_switches: must be"),
        ("[freeswitch]\nother_switches = [1]\n" + MINIMAL, "other_switches: item 1 must be a"),
        ('[freeswitch]\nother_switches = ["x"]\n' + MINIMAL, "other_switches: item 1: must be"),
        (
            '[freeswitch]\nother_switches = ["b:1", "b:1"]\n' + MINIMAL,
            "freeswitch.other_switches: item 2: b:1 is listed twice",
        ),
        (
            '[freeswitch]\ninbound = "a:1"\nother_switches = ["a:1"]\n' + MINIMAL,
            "freeswitch.other_switches: item 1: a:1 is listed twice (or is inbound)",
        ),
        (
            '[freeswitch]\npassword_env = "A"\npassword_file = "/f"\n' + MINIMAL,
            "freeswitch.password_file: give either password_env or password_file",
        ),
        ('[routes]\n"5000" = "queue:nope"\n' + MINIMAL, "routes.5000: no queue named 'nope'"),
        ('[routes]\n"5000" = "ivr:menu"\n' + MINIMAL, "routes.5000: no IVR menu named 'menu'"),
        ('[routes]\n"5000" = "support"\n' + MINIMAL, "routes.5000: malformed target"),
        ('[routes]\n"5000" = 1\n' + MINIMAL, "routes.5000: must be a target string"),
        ('[routes]\n"50 00" = "queue:support"\n' + MINIMAL, 'routes."50 00": a destination'),
        (
            '[routes]\n"0301234567" = "queue:support"\n"+49301234567" = "queue:sales"\n'
            + MINIMAL
            + "[queues.sales]\n",
            'routes."+49301234567": is the same number as routes.0301234567',
        ),
        ('default_route = "queue:nope"\n' + MINIMAL, "default_route: no queue named 'nope'"),
        ("default_route = 3\n" + MINIMAL, "default_route: must be a string"),
        ("typo = 1\n" + MINIMAL, "typo: unknown key"),
        ("rotues = 1\n" + MINIMAL, "rotues: unknown key (did you mean routes?)"),
        ("server = 1\n" + MINIMAL, "server: must be a table"),
    ],
)
def test_errors_name_the_key(text, message):
    errs = errors_of(text)
    assert any(message in e for e in errs), errs


def test_literal_password_is_refused():
    errs = errors_of('[freeswitch]\npassword = "ClueCon"\n' + MINIMAL)
    assert len(errs) == 1
    assert errs[0].startswith("freeswitch.password: a literal password is not allowed")
    assert "FSACD_ESL_PASSWORD" in errs[0] and "password_file" in errs[0]
    assert "ClueCon" not in errs[0]


def test_all_errors_are_collected():
    errs = errors_of(
        """
typo = 1
[server]
max_calls = -5
[queues.a]
ring_timeout = 2.5
wrap_up = -1
strategy = "nope"
[queues.b]
overflow = "c"
"""
    )
    assert len(errs) == 6, errs


def test_overflow_loop_reported_once():
    errs = errors_of(
        '[queues.a]\noverflow = "b"\n[queues.b]\noverflow = "c"\n[queues.c]\noverflow = "a"\n'
    )
    assert errs == ["queues.a.overflow: overflow chain loops: a -> b -> c -> a"]


def test_overflow_chain_without_loop_is_fine():
    cfg = load_text('[queues.a]\noverflow = "b"\n[queues.b]\noverflow = "c"\n[queues.c]\n', env={})
    assert cfg.queues["a"].overflow == "b"


def test_bad_toml():
    errs = errors_of("[queues.support\n")
    assert len(errs) == 1 and "not valid TOML" in errs[0]


def test_load_and_check(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    assert load(good, env={}).source == str(good)
    assert check(good, env={}) == []
    bad = tmp_path / "bad.toml"
    bad.write_text("[queues.support]\nring_timeout = 0\n")
    assert check(bad, env={})[0].startswith("queues.support.ring_timeout:")
    missing = tmp_path / "missing.toml"
    errs = check(missing)
    assert len(errs) == 1 and str(missing) in errs[0] and "cannot read" in errs[0]


def test_resolve_path():
    assert resolve_path("x.toml", env={"FSACD_CONFIG": "y.toml"}) == Path("x.toml")
    assert resolve_path(None, env={"FSACD_CONFIG": "y.toml"}) == Path("y.toml")
    assert resolve_path(None, env={}) == Path("fsacd.toml")
    assert resolve_path(None, env={"FSACD_CONFIG": ""}) == Path("fsacd.toml")


def test_password_from_env_and_file(tmp_path):
    cfg = load_text(MINIMAL, env={})
    assert password(cfg, env={"FSACD_ESL_PASSWORD": "s3cret"}) == "s3cret"
    assert password(cfg, env={}) is None
    cfg = load_text('[freeswitch]\npassword_env = "MY_PW"\n' + MINIMAL, env={})
    assert password(cfg, env={"MY_PW": "x"}) == "x"
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    cfg = load_text(f'[freeswitch]\npassword_file = "{f}"\n' + MINIMAL, env={})
    assert password(cfg, env={"FSACD_ESL_PASSWORD": "ignored"}) == "from-file"
    f.unlink()
    with pytest.raises(ConfigError) as exc:
        password(cfg)
    assert exc.value.errors[0].startswith("freeswitch.password_file: cannot read")


def test_example_config_is_valid():
    cfg = load(EXAMPLE, env={})
    assert cfg.queues
    assert check(EXAMPLE, env={}) == []


def test_docs_list_every_key():
    """docs/config.md mentions every key the loader accepts."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    keys = ["default_route"]
    for cls in (config.ServerConfig, config.RedisConfig, config.FreeswitchConfig):
        keys += [f.name for f in dataclasses.fields(cls)]
    keys += [f.name for f in dataclasses.fields(config.QueueConfig) if f.name != "name"]
    for key in keys:
        assert f"`{key}`" in doc, key


def test_other_switches_each_get_a_feed_address_after_inbound():
    cfg = load_text(
        '[freeswitch]\ninbound = "10.0.0.1:8021"\n'
        'other_switches = ["10.0.0.2:8021", "[::1]:8022"]\n' + MINIMAL,
        env={},
    )
    assert cfg.freeswitch.other_switches == ("10.0.0.2:8021", "[::1]:8022")
    assert cfg.freeswitch.feed_addresses == [
        ("10.0.0.1", 8021), ("10.0.0.2", 8021), ("::1", 8022)
    ]
    assert load_text(MINIMAL, env={}).freeswitch.feed_addresses == [("127.0.0.1", 8021)]
