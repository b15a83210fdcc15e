"""fsacd.cli.main against a real Redis: config check, agents, queues, --json, exit codes."""

import json

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.state.store import Store

CONFIG = """
default_route = "queue:support"

[routes]
"5000" = "queue:support"
"5002" = "queue:sales"

[queues.support]
strategy = "most-idle"

[queues.sales]
strategy = "ring-all"
"""


@pytest.fixture
def cfg_path(tmp_path):
    p = tmp_path / "fsacd.toml"
    p.write_text(CONFIG)
    return p


@pytest.fixture
def run(redis_url, cfg_path):
    """Invoke ``fsacd --config cfg_path ARGS`` with REDIS_URL pointing at the test Redis."""
    runner = CliRunner()

    def invoke(*args, config=cfg_path, env=None):
        argv = ["--config", str(config), *args] if config is not None else list(args)
        return runner.invoke(main, argv, env={"REDIS_URL": redis_url, **(env or {})})

    return invoke


@pytest.fixture
def store(r):
    return Store(r)


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def as_json(result):
    return json.loads(ok(result).stdout)


def add(run, agent="1001", *queues):
    return ok(
        run(
            "agent",
            "add",
            agent,
            "--contact",
            f"user/{agent}@pbx.example",
            *[x for q in queues or ("support",) for x in ("--queue", q)],
        )
    )


# --- config check ---------------------------------------------------------------------------


def test_config_check_ok(run):
    res = ok(run("config", "check"))
    assert res.stdout.strip() == "config OK: 2 queues, 2 routes"
    data = as_json(run("config", "check", "--json"))
    assert data["ok"] is True and data["errors"] == []
    assert (data["queues"], data["routes"]) == (2, 2)


def test_config_check_errors(run, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('typo = 1\n[queues.a]\nring_timeout = 2.5\n[freeswitch]\npassword = "x"\n')
    res = run("config", "check", config=bad)
    assert res.exit_code == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 3
    assert any(line.startswith("queues.a.ring_timeout:") for line in lines)
    assert any(line.startswith("freeswitch.password:") for line in lines)
    res = run("config", "check", "--json", config=bad)
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["ok"] is False and len(data["errors"]) == 3


def test_config_path_from_env_and_missing_file(run, cfg_path, tmp_path, monkeypatch):
    res = ok(run("config", "check", config=None, env={"FSACD_CONFIG": str(cfg_path)}))
    assert "config OK" in res.stdout
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fsacd.toml").write_text("[queues.only]\n")
    assert "1 queues" in ok(run("config", "check", config=None, env={"FSACD_CONFIG": ""})).stdout
    res = run("config", "check", config=tmp_path / "missing.toml")
    assert res.exit_code == 1 and "cannot read" in res.stderr


def test_bad_config_stops_other_commands(run, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[queues.a]\nwrap_up = -1\n")
    res = run("agent", "list", config=bad)
    assert res.exit_code == 1
    assert "queues.a.wrap_up:" in res.stderr
    assert "Traceback" not in res.output


# --- agents ---------------------------------------------------------------------------------


def test_agent_add_and_show(run, store):
    res = add(run, "1001", "support:2", "sales")
    assert "agent 1001 added" in res.stdout
    a = store.get_agent("1001")
    assert a["contact"] == "user/1001@pbx.example"
    assert a["queues"] == {"support": 2, "sales": 1}
    assert a["status"] == "logged-out"
    data = as_json(run("agent", "show", "1001", "--json"))
    assert data["id"] == "1001" and data["queues"] == {"support": 2, "sales": 1}
    human = ok(run("agent", "show", "1001")).stdout
    assert "user/1001@pbx.example" in human and "support:2" in human


def test_agent_add_updates(run, store):
    add(run, "1001", "support")
    res = ok(
        run("agent", "add", "1001", "--contact", "user/1001@b", "--queue", "sales:3", "--json")
    )
    data = json.loads(res.stdout)
    assert data["created"] is False
    assert data["agent"]["contact"] == "user/1001@b"
    assert store.get_agent("1001")["queues"] == {"sales": 3}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--contact", "user/1@x", "--queue", "nope"], "unknown queue 'nope'"),
        (["--contact", "user/1@x", "--queue", "support:x"], "position"),
        (["--contact", "user/1@x", "--queue", "support:-1"], "position"),
        (["--contact", "user/1@x,user/666@evil", "--queue", "support"], "--contact"),
        (["--contact", "user/1@x|y", "--queue", "support"], "--contact"),
        (["--contact", "[x=y]user/1@x", "--queue", "support"], "--contact"),
        (["--contact", "user/${x", "--queue", "support"], "--contact"),
        (["--contact", "", "--queue", "support"], "--contact"),
    ],
)
def test_agent_add_refuses(run, store, args, words):
    res = run("agent", "add", "1001", *args)
    assert res.exit_code == 1
    assert words in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert store.get_agent("1001") is None


def test_agent_add_bad_id(run):
    res = run("agent", "add", "a b", "--contact", "user/1@x", "--queue", "support")
    assert res.exit_code == 1
    assert "invalid agent id" in res.stderr


def test_agent_add_needs_contact_and_queue(run):
    assert run("agent", "add", "1001", "--queue", "support").exit_code == 2
    assert run("agent", "add", "1001", "--contact", "user/1@x").exit_code == 2


def test_status_changes(run, store, r):
    add(run, "1001", "support")
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.keys.wake_channel())
    assert pubsub.get_message(timeout=0.5) is None  # (the subscribe confirmation is skipped)

    res = ok(run("agent", "login", "1001"))
    assert "logged in (was logged-out)" in res.stdout
    assert store.get_agent("1001")["status"] == "available"
    msg = pubsub.get_message(timeout=2)
    assert msg and msg["data"] == "support"  # the CLI woke the agent's queue

    data = as_json(run("agent", "break", "1001", "--reason", "lunch", "--json"))
    assert data["previous"] == "available"
    assert data["agent"]["status"] == "on-break" and data["agent"]["break_reason"] == "lunch"
    listed = ok(run("agent", "list")).stdout
    assert "on-break (lunch)" in listed

    ok(run("agent", "available", "1001"))
    assert store.get_agent("1001")["status"] == "available"
    ok(run("agent", "logout", "1001"))
    assert store.get_agent("1001")["status"] == "logged-out"
    pubsub.close()


@pytest.mark.parametrize(
    "args",
    [
        ["agent", "login", "ghost"],
        ["agent", "logout", "ghost"],
        ["agent", "break", "ghost"],
        ["agent", "available", "ghost"],
        ["agent", "show", "ghost"],
        ["agent", "remove", "ghost"],
        ["agent", "show", "ghost", "--json"],
    ],
)
def test_unknown_agent(run, args):
    res = run(*args)
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr.strip().splitlines() == ["Error: unknown agent 'ghost'"]


def test_break_reason_validated(run):
    add(run, "1001")
    res = run("agent", "break", "1001", "--reason", "x" * 65)
    assert res.exit_code == 1 and "reason" in res.stderr


def test_agent_remove(run, store):
    add(run, "1001")
    res = ok(run("agent", "remove", "1001", "--yes"))
    assert "removed" in res.stdout
    assert store.get_agent("1001") is None


def test_remove_busy_agent_refused(run, store):
    add(run, "1001", "support")
    ok(run("agent", "login", "1001"))
    store.enqueue({"id": "call-1", "owner": "c1"}, "support", 0)
    head, snaps = store.candidates("support")
    offer = store.reserve("support", head, [s.id for s in snaps], 1)
    assert offer is not None
    res = run("agent", "remove", "1001", "--yes")
    assert res.exit_code == 1
    assert "1001" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert store.get_agent("1001") is not None


def test_agent_list(run):
    assert "no agents" in ok(run("agent", "list")).stdout
    assert as_json(run("agent", "list", "--json")) == []
    add(run, "1001", "support")
    add(run, "1002", "support:2", "sales:1")
    ok(run("agent", "login", "1002"))
    data = as_json(run("agent", "list", "--json"))
    assert [a["id"] for a in data] == ["1001", "1002"]
    assert data[1]["status"] == "available"
    assert {"state", "state_since", "answered", "missed", "queues"} <= set(data[0])
    out = ok(run("agent", "list")).stdout
    for word in ("ID", "STATUS", "STATE", "SINCE", "ANSWERED", "MISSED", "QUEUES"):
        assert word in out
    assert "1002" in out and "sales:1 support:2" in out and "available" in out


# --- queues ---------------------------------------------------------------------------------


def test_queue_list(run, store):
    data = as_json(run("queue", "list", "--json"))
    assert [q["name"] for q in data] == ["support", "sales"]
    assert data[0]["strategy"] == "most-idle" and data[0]["waiting"] == 0
    add(run, "1001", "support")
    ok(run("agent", "login", "1001"))
    store.enqueue({"id": "call-1", "owner": "c1"}, "sales", 0)
    data = {q["name"]: q for q in as_json(run("queue", "list", "--json"))}
    assert data["support"]["members"] == 1 and data["support"]["available"] == 1
    assert data["sales"]["waiting"] == 1
    out = ok(run("queue", "list")).stdout
    assert "support" in out and "sales" in out and "WAITING" in out


def test_queue_show(run, store):
    add(run, "1001", "support:1")
    add(run, "1002", "support:2")
    ok(run("agent", "login", "1002"))
    store.enqueue({"id": "call-a", "owner": "c1", "number": "+49301234567"}, "support", 0)
    store.enqueue({"id": "call-b", "owner": "c1"}, "support", 5)
    data = as_json(run("queue", "show", "support", "--json"))
    assert data["name"] == "support"
    assert [w["id"] for w in data["waiting"]] == ["call-b", "call-a"]
    assert [m["id"] for m in data["members"]] == ["1001", "1002"]
    assert data["config"]["strategy"] == "most-idle" and data["config"]["ring_timeout"] == 15
    out = ok(run("queue", "show", "support")).stdout
    assert "call-a" in out and "call-b" in out and "1002" in out and "+49301234567" in out


def test_queue_show_empty(run):
    data = as_json(run("queue", "show", "sales", "--json"))
    assert data["waiting"] == [] and data["members"] == []
    out = ok(run("queue", "show", "sales")).stdout
    assert "waiting: none" in out and "members: none" in out


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_queue_show_unknown(run, extra):
    res = run("queue", "show", "nope", *extra)
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "Error: unknown queue 'nope' (configured: support, sales)"
    ]


def test_redis_unreachable_is_one_line(run, cfg_path):
    res = run("agent", "list", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert res.exit_code == 1
    assert "Redis" in res.stderr and "Traceback" not in res.output


def test_serve_calls_controller_run(run, monkeypatch):
    import types

    seen = {}
    fake = types.ModuleType("fsacd.acd.controller")
    fake.run = lambda cfg, config_path=None: seen.update(cfg=cfg, path=config_path)
    monkeypatch.setitem(__import__("sys").modules, "fsacd.acd.controller", fake)
    import fsacd.acd

    monkeypatch.setattr(fsacd.acd, "controller", fake, raising=False)
    ok(run("serve", "--log-level", "warning"))
    assert set(seen["cfg"].queues) == {"support", "sales"}
    assert seen["path"] is not None and seen["path"].name.endswith(".toml")


def test_reload_publishes_to_running_controllers(run, redis_url):
    import redis as redislib

    from fsacd.state.keys import Keys

    r = redislib.Redis.from_url(redis_url, decode_responses=True)
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(Keys().control_channel())
    out = ok(run("reload", "--json")).stdout
    assert json.loads(out) == {"requested": True, "controllers": 1}
    msg = None
    for _ in range(50):
        msg = ps.get_message(timeout=0.1)
        if msg:
            break
    assert msg and msg["data"] == "reload"
    ps.close()


def test_help_and_version(run):
    out = ok(run("--help", config=None)).stdout
    for cmd in ("config", "agent", "queue", "serve"):
        assert cmd in out
    assert "0.1.0" in ok(run("--version", config=None)).stdout
