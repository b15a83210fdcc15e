"""``scripts/demo``: fsacd end to end on one machine, with no FreeSWITCH and no Redis server.

It starts ``fsacd serve`` (a real process) with the example config and an embedded Redis,
adds and logs in agents whose phones behave differently (quick, slow, never answering, busy,
rejecting), lets the FreeSWITCH stand-in place callers for about 30 seconds (some give up
while waiting), waits until every call has ended, and prints what happened from the Redis
event stream. It exits non-zero if an agent is left stuck.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from fsacd.config import load  # noqa: E402
from fsacd.standin import FakeFreeSwitch  # noqa: E402
from fsacd.standin import PhoneBehaviour as P  # noqa: E402
from fsacd.state.connection import close, connect, url_of  # noqa: E402
from fsacd.state.store import Store  # noqa: E402

EXAMPLE = Path(__file__).parents[1] / "examples" / "fsacd.toml"

# (agent id, phone behaviour, queues with positions)
AGENTS = [
    ("1001", lambda: P.answers(after=1.0, talk=6.0), {"support": 1, "sales": 2}),
    ("1002", lambda: P.answers(after=2.0, talk=7.5), {"support": 2}),
    ("1003", lambda: P.answers(after=1.5, talk=5.0), {"support": 3, "sales": 1}),
    ("1004", lambda: P.never_answers(), {"support": 4}),
    ("1005", lambda: P.busy(), {"support": 5}),
    ("1006", lambda: P.answers(after=0.5, talk=8.0), {"sales": 3}),
    ("1007", lambda: P.rejects(), {"sales": 4}),
    ("1008", lambda: P.answers(after=3.0, talk=4.0), {"support": 6, "sales": 5}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_config(workdir: Path, port: int, inbound: tuple[str, int]) -> Path:
    """The example config, with a free port, demo-sized timers and the data in ``workdir``."""
    text = EXAMPLE.read_text()
    text = text.replace('inbound = "127.0.0.1:8021"', f'inbound = "{inbound[0]}:{inbound[1]}"')
    text = text.replace('listen = "127.0.0.1:8084"', f'listen = "127.0.0.1:{port}"')
    text = text.replace('data_dir = "var"', f'data_dir = "{workdir / "redis"}"')
    text = text.replace("ring_timeout = 15", "ring_timeout = 4")
    text = text.replace("ring_timeout = 20", "ring_timeout = 5")
    text = text.replace("max_wait = 120 ", "max_wait = 20  ")
    text = text.replace("no_answer_delay = 10", "no_answer_delay = 3")
    text = text.replace("busy_delay = 10", "busy_delay = 3")
    text = text.replace("reject_delay = 30", "reject_delay = 5")
    text = text.replace("wrap_up = 5", "wrap_up = 2")
    path = workdir / "fsacd.toml"
    path.write_text(text)
    return path


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fsacd serve exited early with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("fsacd serve did not start listening in time")


def summarize(store: Store, started: float) -> tuple[str, int]:
    """Text summary from the event stream and the agents' final state; and the stuck count."""
    events = store.all_events()
    entered = {e["call"]: float(e["ts"]) for e in events if e.get("type") == "call-entered"}
    bridged = {}
    for e in events:
        if e.get("type") == "call-bridged" and e["call"] not in bridged:
            bridged[e["call"]] = (float(e["ts"]), e.get("agent", ""))
    ended = [e for e in events if e.get("type") in ("call-ended", "call-abandoned")]
    outcomes: dict[str, int] = {}
    for e in ended:
        outcomes[e.get("outcome", "?")] = outcomes.get(e.get("outcome", "?"), 0) + 1
    offers = [e for e in events if e.get("type") == "call-offered"]
    missed = [e for e in events if e.get("type") == "agent-missed"]
    waits = [bridged[c][0] - entered[c] for c in bridged if c in entered]
    per_agent: dict[str, int] = {}
    for _, agent in bridged.values():
        per_agent[agent] = per_agent.get(agent, 0) + 1
    lines = [
        f"calls entered:      {len(entered)}",
        f"offers made:        {len(offers)}",
        f"answered:           {len(bridged)}",
        f"abandoned:          {outcomes.get('abandoned', 0)}",
        "other outcomes:     "
        + (
            ", ".join(
                f"{k}={v}"
                for k, v in sorted(outcomes.items())
                if k not in ("answered", "abandoned")
            )
            or "none"
        ),
        f"missed offers:      {len(missed)} ("
        + ", ".join(
            f"{o}={sum(1 for m in missed if m.get('outcome') == o)}"
            for o in sorted({m.get("outcome", "?") for m in missed})
        )
        + ")",
        f"wait to answer:     avg {sum(waits) / len(waits):.1f}s, max {max(waits):.1f}s"
        if waits
        else "wait to answer:     no call answered",
        "calls per agent:    " + ", ".join(f"{a}={n}" for a, n in sorted(per_agent.items())),
        "",
        "agents at the end:",
    ]
    stuck = 0
    for a in store.list_agents():
        flag = ""
        if a["state"] in ("reserved", "ringing", "in-call") or a.get("call"):
            stuck += 1
            flag = "  <-- STUCK"
        reason = f" reason={a['break_reason']}" if a["break_reason"] else ""
        lines.append(
            f"  {a['id']}: {a['status']:<10} {a['state']:<8} answered={a['answered']} "
            f"missed={a['missed']}{reason}{flag}"
        )
    lines.append(f"\nran {time.time() - started:.0f}s")
    return "\n".join(lines), stuck


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long callers arrive")
    parser.add_argument("--rate", type=float, default=0.7, help="new callers per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="fsacd-demo-"))
    port = free_port()
    # the FreeSWITCH stand-in: outbound calls to fsacd, inbound event socket for fsacd
    fs = FakeFreeSwitch(
        socket_target=("127.0.0.1", port), inbound=("127.0.0.1", 0), password="ClueCon"
    )
    fs.start()
    cfg_path = demo_config(workdir, port, fs.inbound_address)
    cfg = load(cfg_path, env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    # the embedded Redis is started here and shared with the fsacd process through its socket
    r = connect(None, cfg.redis.data_dir)
    env = dict(
        os.environ, REDIS_URL=url_of(r), FSACD_CONFIG=str(cfg_path), FSACD_ESL_PASSWORD="ClueCon"
    )
    print(f"fsacd demo: controller on 127.0.0.1:{port}, embedded Redis at {url_of(r)}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsacd", "serve", "--log-level", "warning"],
        env=env,
    )
    try:
        wait_listening(port, proc)
        store = Store(r, prefix=cfg.redis.prefix)
        store.sync_queues(cfg.queues)
        for agent_id, phone, queues in AGENTS:
            contact = f"user/{agent_id}@pbx.example"
            fs.phones.register(contact, phone())
            store.add_agent(agent_id, contact, queues)
            store.login(agent_id)
        print(f"{len(AGENTS)} agents logged in; callers arrive for {args.seconds:.0f}s ...")
        calls = []
        t_end = time.time() + args.seconds
        n = 0
        while time.time() < t_end:
            gevent.sleep(rng.expovariate(args.rate))
            n += 1
            dest = "5000" if rng.random() < 0.7 else "5002"
            patience = rng.choice([None, None, rng.uniform(3, 12)])
            calls.append(
                fs.place_call(
                    destination=dest,
                    caller_number=f"0221 {rng.randint(1000000, 9999999)}",
                    caller_name=f"Caller {n}",
                    hangup_after=patience,
                )
            )
        print(f"{len(calls)} callers placed; waiting for the last calls to end ...")
        deadline = time.time() + 90
        for c in calls:
            try:
                c.wait_hangup(timeout=max(0.1, deadline - time.time()))
            except TimeoutError:
                c.hangup()
        # let wrap-ups run out before judging the agents
        gevent.sleep(3.0)
        text, stuck = summarize(store, started)
        print(text)
        if stuck:
            print(f"FAIL: {stuck} agent(s) stuck", file=sys.stderr)
            return 1
        print("OK: no agent stuck")
        return 0
    finally:
        fs.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        close(r)  # the embedded Redis stops (it was the last client) before its files go
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
