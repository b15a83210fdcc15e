"""The embedded Redis (fsacd/state/embedded.py): one server per data directory, shared by
every fsacd process using it, stopped by the last one, its data kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fsacd.state.connection import close, connect
from fsacd.state.embedded import MAX_SOCKET_PATH, Embedded

ROOT = Path(__file__).resolve().parent.parent


def test_a_second_client_joins_and_the_last_one_stops_the_server(tmp_path):
    first = connect(None, tmp_path)
    second = connect(None, tmp_path)
    server = first.fsacd_embedded
    pid = server.pid()
    assert pid and second.fsacd_embedded.pid() == pid  # one server, joined
    first.set("k", "v")
    close(first)
    assert server.answers() and second.get("k") == "v"  # still in use: still running
    close(second)
    assert not server.answers() and not server.pidfile.exists()
    again = connect(None, tmp_path)
    try:
        assert again.get("k") == "v"  # saved at the stop, loaded at the next start
        assert again.fsacd_embedded.pid() != pid
    finally:
        close(again)


def test_a_deep_data_directory_gets_its_socket_in_a_private_directory(tmp_path):
    deep = tmp_path.joinpath(*["d" * 20] * 6)
    server = Embedded(deep)
    assert len(str(deep / "redis.sock")) > MAX_SOCKET_PATH
    assert len(str(server.socket)) <= MAX_SOCKET_PATH
    assert oct(server.socket.parent.stat().st_mode & 0o777) == "0o700"
    client = connect(None, deep)
    try:
        client.set("k", "v")
        assert client.get("k") == "v"
    finally:
        close(client)
    assert (deep / "fsacd.db").exists()


def test_a_socket_left_by_a_killed_server_does_not_stop_the_next_start(tmp_path):
    client = connect(None, tmp_path)
    client.set("k", "v")
    client.save()
    server = client.fsacd_embedded
    os.kill(server.pid(), 9)
    client.connection_pool.disconnect()
    client.fsacd_embedded = None  # it is gone: nothing to stop
    assert server.socket.exists() and not server.answers()
    again = connect(None, tmp_path)
    try:
        assert again.get("k") == "v"
    finally:
        close(again)


def test_commands_started_at_once_share_one_server(tmp_path):
    script = (
        "import sys; from fsacd.state.connection import connect, close\n"
        f"c = connect(None, {str(tmp_path)!r}); c.incr('n')\n"
        "print(c.fsacd_embedded.pid()); close(c)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(o.strip().isdigit() for o in outs)
    client = connect(None, tmp_path)
    try:
        assert client.get("n") == "6"  # no increment lost to a second server on the file
    finally:
        close(client)
    assert not Embedded(tmp_path).answers()


def test_a_data_directory_removed_under_its_client_does_not_leave_the_server_running(tmp_path):
    import shutil
    import time

    data = tmp_path / "var"
    client = connect(None, data)
    server = client.fsacd_embedded
    pid = server.pid()
    shutil.rmtree(data)  # as a demo or test cleaning up before it closed its client
    close(client)
    deadline = time.time() + 10
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists()  # (daemonized: reaped by init)
