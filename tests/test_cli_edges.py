"""The CLI's rough edges (issue 13): one-line errors, human output, input refused, confirmations."""

import json
import os
import re
import time

import click
import pytest
from click.testing import CliRunner

from fsacd.cli.main import main

CONFIG = """
[freeswitch]
default_region = "DE"

[queues.support]
strategy = "most-idle"
network_only_countries = []
callback_prompt = ["ivr/a.wav", "ivr/b.wav"]

[queues.sales]
"""


@pytest.fixture
def run(redis_url, tmp_path):
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text(CONFIG)
    runner = CliRunner()

    def invoke(*args, config=cfg, input=None):
        return runner.invoke(
            main, ["--config", str(config), *args], env={"REDIS_URL": redis_url}, input=input
        )

    return invoke


def one_line_error(res, code=1):
    """Exit ``code``, nothing on stdout, one ``Error: ...`` line on stderr, no traceback."""
    assert res.exit_code == code, (res.output, res.exception)
    assert isinstance(res.exception, SystemExit), res.exception
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def add(run, agent="1001", *queues):
    qs = [x for q in queues or ("support",) for x in ("--queue", q)]
    res = run("agent", "add", agent, "--contact", f"user/{agent}@pbx.example", *qs)
    assert res.exit_code == 0, res.output
    return res


def test_call_dial_unsupported_region_is_one_line(run):
    line = one_line_error(
        run("call", "dial", "0221 29191999", "--queue", "support", "--region", "ZZ")
    )
    assert "--region 'ZZ'" in line


def test_same_queue_twice_refused(run):
    res = run(
        "agent",
        "add",
        "1001",
        "--contact",
        "user/1001@pbx.example",
        "--queue",
        "support:1",
        "--queue",
        "support:5",
    )
    assert "given twice" in one_line_error(res)
    assert run("agent", "show", "1001").exit_code == 1  # nothing was stored


def test_numbers_add_unknown_agent_refused(run):
    line = one_line_error(run("numbers", "add", "+4922129191999", "--agent", "nosuch"))
    assert "unknown agent 'nosuch'" in line
    listed = json.loads(run("numbers", "list", "--json").stdout)
    assert listed["numbers"] == []
    add(run, "1001")
    res = run("numbers", "add", "+4922129191999", "--agent", "1001", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["number"]["agent"] == "1001"


def test_consent_by_is_bounded(run):
    add(run, "1001")
    line = one_line_error(run("agent", "consent", "1001", "--by", "x" * 3000))
    assert "--by must be 1 to 100" in line
    one_line_error(run("agent", "consent", "1001", "--by", "a\x1b[31mb"))
    shown = json.loads(run("agent", "show", "1001", "--json").stdout)
    assert not shown.get("rec_consent") and not shown.get("rec_consent_by")  # nothing stored
    res = run("agent", "consent", "1001", "--by", "Jo Supervisor")
    assert res.exit_code == 0 and "recording consent given" in res.stdout


def test_agent_show_times_are_local_iso_and_json_keeps_numbers(run):
    add(run, "1001")
    assert run("agent", "consent", "1001", "--by", "jo").exit_code == 0
    data = json.loads(run("agent", "show", "1001", "--json").stdout)
    at = float(data["rec_consent_at"])
    assert abs(at - time.time()) < 60
    out = run("agent", "show", "1001").stdout
    line = next(x for x in out.splitlines() if x.split()[:1] == ["rec_consent_at"])
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
    assert stamp in line and "ago" in line
    assert not re.search(r"\b1\d{9}(\.\d+)?\b", out), out  # no epoch seconds anywhere


def test_queue_show_prints_no_python_values(run):
    out = run("queue", "show", "support").stdout
    for python in ("True", "False", "()", "('", "None"):
        assert python not in out, (python, out)
    rows = {
        x.split()[0]: x.split(None, 1)[1].strip() for x in out.splitlines() if len(x.split()) > 1
    }
    assert rows["callback_prompt"] == "ivr/a.wav, ivr/b.wav"
    assert rows["join_empty"] == "yes" and rows["leave_empty"] == "no"
    assert rows["network_only_countries"] == "none"
    data = json.loads(run("queue", "show", "support", "--json").stdout)
    assert data["config"]["join_empty"] is True
    assert data["config"]["callback_prompt"] == ["ivr/a.wav", "ivr/b.wav"]


def _commands(cmd, path):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, [*path, name])


def test_short_help_is_never_cut_mid_sentence(run):
    for path, cmd in _commands(main, ["fsacd"]):
        short = cmd.get_short_help_str(limit=1000)
        assert short.count("(") == short.count(")"), (path, short)
        assert not short.endswith(("e.g.", "i.e.", "etc.", "vs.")), (path, short)
    out = run("numbers", "--help").stdout
    line = next(x for x in out.splitlines() if x.strip().startswith("add"))
    assert "e.g." not in line and "pending verification" in line


def test_config_check_errors_go_to_stderr(run, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[queues.support]\nstrategy = "nope"\n')
    res = run("config", "check", config=bad)
    assert res.exit_code == 1 and res.stdout == ""
    assert "strategy" in res.stderr


def test_agent_remove_asks_unless_yes(run):
    add(run, "1001")
    res = run("agent", "remove", "1001", input="n\n")
    assert res.exit_code == 1 and "remove agent 1001" in res.stdout
    assert run("agent", "show", "1001").exit_code == 0
    res = run("agent", "remove", "1001", input="y\n")
    assert res.exit_code == 0 and "agent 1001 removed" in res.stdout
    add(run, "1002")
    res = run("agent", "remove", "1002", "--yes", "--json")
    assert json.loads(res.stdout) == {"ok": True, "removed": "1002"}


def test_everyday_commands_never_ask(run):
    add(run, "1001")
    for args in (("login",), ("break",), ("available",), ("logout",)):
        res = run("agent", *args, "1001", input="")
        assert res.exit_code == 0 and "?" not in res.stdout, (args, res.output)
        assert res.stdout.startswith("agent 1001 ")  # says what it changed


def test_embedded_redis_stops_at_close_and_keeps_its_data(tmp_path):
    from fsacd.state.connection import close, connect

    client = connect(None, tmp_path)
    client.set("k", "v")
    pidfile = client.fsacd_embedded.pidfile
    assert os.path.exists(pidfile)
    close(client)
    assert not os.path.exists(pidfile)  # the server is gone
    again = connect(None, tmp_path)
    try:
        assert again.get("k") == "v"  # and saved what it held
    finally:
        close(again)


@pytest.mark.parametrize(
    "args",
    [
        ("agent", "show", "nosuch"),
        ("agent", "login", "nosuch"),
        ("agent", "consent", "nosuch"),
        ("queue", "show", "nosuch"),
        ("contacts", "show", "nosuch"),
        ("contacts", "remove", "nosuch"),
        ("call", "show", "nosuch"),
        ("pop", "watch", "nosuch"),
        ("listen", "nosuch", "--from", "user/2000@pbx.example"),
        ("numbers", "add", "+4922129191999", "--agent", "nosuch"),
        ("agent", "add", "1001", "--contact", "user/1001", "--queue", "nosuch"),
    ],
)
def test_unknown_names_are_quoted_the_same_everywhere(run, args):
    line = one_line_error(run(*args))
    assert "'nosuch'" in line, line
