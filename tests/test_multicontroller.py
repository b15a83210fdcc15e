"""Several ``fsacd serve`` processes on one Redis; controllers killed, restarted, drained.

The FreeSWITCH stand-in runs in this process (outbound calls to either controller, inbound ESL
for the controllers' ``uuid_exists`` checks); the controllers are real processes.
"""

from __future__ import annotations

import signal
import time

import pytest
import redis

from fsacd.standin import FakeFreeSwitch
from fsacd.standin import PhoneBehaviour as P
from fsacd.state.store import Store
from tests.acd_harness import wait_for
from tests.invariants import double_bookings, events, order_violations
from tests.procs import ServeProcess


@pytest.fixture
def fs():
    f = FakeFreeSwitch(inbound=("127.0.0.1", 0), password="ClueCon", heartbeat_interval=None)
    f.start()
    yield f
    f.stop()


@pytest.fixture
def procs():
    started: list[ServeProcess] = []
    yield started
    for p in started:
        p.stop()


@pytest.fixture
def store(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    s = Store(r, controller_id="test")
    s.sync_queues(["support"])
    return s


def serve(procs, tmp_path, cid, redis_url, fs, **kw) -> ServeProcess:
    p = ServeProcess(tmp_path, cid, redis_url, fs.inbound_address, **kw)
    procs.append(p)
    return p.start()


def add_agents(store, fs, n, behaviour, first=1001):
    ids = []
    for i in range(n):
        aid = str(first + i)
        contact = f"user/{aid}@pbx.example"
        fs.phones.register(contact, behaviour)
        store.add_agent(aid, contact, {"support": i + 1})
        store.login(aid)
        ids.append(aid)
    return ids


def after_socket(other: ServeProcess):
    """The shipped dialplan's idea: after `socket`, try the other controller, then hang up."""
    return [("socket", f"127.0.0.1:{other.port} async full"), ("hangup", "NORMAL_CLEARING")]


def talking_intervals(fs) -> dict[str, list[tuple[float, float, str]]]:
    """Per agent: (answered, hung up, call) of every agent leg the stand-in saw."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    for leg in fs.legs:
        ch = leg.channel
        if ch is None:
            continue
        times = {what: t for t, what, _ in ch.log if what in ("answered", "hangup")}
        if "answered" in times:
            agent = leg.variables.get("fsacd_agent", "")
            end = times.get("hangup", time.time())
            out.setdefault(agent, []).append(
                (times["answered"], end, leg.variables.get("fsacd_call", ""))
            )
    return out


def offered_while_talking(evs, intervals) -> list[str]:
    bad = []
    for e in evs:
        if e.get("type") == "agent-state" and e.get("state") == "reserved":
            ts = float(e["ts"])
            for start, end, call in intervals.get(e["agent"], []):
                if start < ts < end and call != e.get("call"):
                    bad.append(f"{e['agent']} reserved for {e['call']} while talking on {call}")
    return bad


def test_two_controllers_share_agents_without_double_booking(fs, procs, store, redis_url, tmp_path):
    a = serve(procs, tmp_path, "ctl-a", redis_url, fs)
    b = serve(procs, tmp_path, "ctl-b", redis_url, fs)
    add_agents(store, fs, 10, P.answers(after=0.05, talk=0.15))
    calls = []
    for i in range(200):
        target = a if i % 2 == 0 else b
        calls.append(
            fs.place_call(
                destination="5000", caller_number=f"+49221{i:07d}", socket_target=target.address
            )
        )
        if i % 10 == 9:
            time.sleep(0.05)
    for c in calls:
        c.wait_hangup(timeout=90)
    wait_for(
        lambda: all(x["state"] == "idle" for x in store.list_agents()),
        timeout=10,
        what="all agents idle",
    )
    evs = events(store.r)
    ended = [e for e in evs if e.get("type") == "call-ended"]
    assert len(ended) == 200
    assert all(e["outcome"] == "answered" for e in ended)
    owners = {store.get_call(c.uuid)["owner"] for c in calls}
    assert owners == {"ctl-a", "ctl-b"}
    assert double_bookings(evs) == []
    scores = {c.uuid: int(store.get_call(c.uuid)["score"]) for c in calls}
    assert order_violations(evs, scores) == []
    assert offered_while_talking(evs, talking_intervals(fs)) == []


def test_kill_9_while_calls_wait_ring_and_talk(fs, procs, store, redis_url, tmp_path):
    a = serve(procs, tmp_path, "ctl-a", redis_url, fs, lease=1.5)
    b = serve(procs, tmp_path, "ctl-b", redis_url, fs, lease=1.5)
    fs.phones.register("user/1001@pbx.example", P.answers(after=0.1, talk=3.0))
    fs.phones.register("user/1002@pbx.example", P.answers(after=1.5, talk=3.0))
    store.add_agent("1001", "user/1001@pbx.example", {"support": 1})
    store.add_agent("1002", "user/1002@pbx.example", {"support": 2})
    store.login("1001")
    store.login("1002")
    kw = dict(
        destination="5000",
        socket_target=a.address,
        variables={"socket_resume": "true"},
        dialplan_after_socket=after_socket(b),
    )
    talking = fs.place_call(caller_number="+4922100001", **kw)
    wait_for(lambda: store.get_agent("1001")["state"] == "in-call", what="1001 talking")
    ringing = fs.place_call(caller_number="+4922100002", **kw)
    wait_for(lambda: store.get_agent("1002")["state"] == "ringing", what="1002 ringing")
    # Redis says ringing just before the bridge is sent; the channel runs it at its next
    # media tick: wait until the phone really rings
    wait_for(
        lambda: any(leg.endpoint == "user/1002@pbx.example" for leg in fs.legs),
        what="1002's phone ringing",
    )
    waiting = [fs.place_call(caller_number=f"+492210001{i}", **kw) for i in range(2)]
    wait_for(
        lambda: all((store.get_call(c.uuid) or {}).get("state") == "waiting" for c in waiting),
        what="two callers waiting",
    )
    seq_before = {c.uuid: store.get_call(c.uuid)["seq"] for c in waiting}

    a.kill9()
    t_kill = time.time()

    # waiting callers are back in the dialplan at once and re-enter at ctl-b, same place
    wait_for(
        lambda: all((store.get_call(c.uuid) or {}).get("owner") == "ctl-b" for c in waiting),
        timeout=5,
        what="waiting callers at ctl-b",
    )
    assert time.time() - t_kill < 3
    assert {c.uuid: store.get_call(c.uuid)["seq"] for c in waiting} == seq_before
    # the established call is not cut; the ringing offer connects
    assert talking.is_up
    ringing.wait_bridged(5)
    # nobody offered to 1001/1002 while they talk; everyone served in the end
    for c in waiting:
        c.wait_bridged(20)
    for c in (talking, ringing, *waiting):
        c.hangup()
    wait_for(
        lambda: all(x["state"] == "idle" for x in store.list_agents()),
        timeout=15,
        what="no stuck agent",
    )
    evs = events(store.r)
    assert double_bookings(evs) == []
    assert offered_while_talking(evs, talking_intervals(fs)) == []
    assert talking.hangup_cause == "NORMAL_CLEARING"  # we hung it up, not the controller's death


def test_restart_with_calls_in_flight_leaves_no_stuck_agent(fs, procs, store, redis_url, tmp_path):
    a = serve(procs, tmp_path, "ctl-a", redis_url, fs, lease=1.0)
    # the talks outlast a restart on a busy machine (a fresh interpreter takes a second or two)
    add_agents(store, fs, 2, P.answers(after=0.1, talk=6.0))
    calls = [
        fs.place_call(destination="5000", caller_number=f"+492210000{i}", socket_target=a.address)
        for i in range(2)
    ]
    wait_for(
        lambda: all(x["state"] == "in-call" for x in store.list_agents()),
        what="both agents talking",
    )
    a.kill9()
    a2 = ServeProcess(tmp_path, "ctl-a", redis_url, fs.inbound_address, lease=1.0, port=a.port)
    procs.append(a2)
    a2.start()
    # the agents stay busy while their calls go on ...
    time.sleep(0.5)
    assert all(x["state"] == "in-call" for x in store.list_agents())
    # ... and are freed once FreeSWITCH says the calls are over
    for c in calls:
        c.wait_hangup(15)
    wait_for(
        lambda: all(
            x["state"] in ("idle", "wrap-up") and not x["call"] for x in store.list_agents()
        ),
        timeout=10,
        what="agents freed",
    )
    assert "reconciled at start-up" in a2.logtext()


def test_sigterm_hands_waiting_callers_back_and_lets_talks_finish(
    fs, procs, store, redis_url, tmp_path
):
    a = serve(procs, tmp_path, "ctl-a", redis_url, fs, drain=10)
    b = serve(procs, tmp_path, "ctl-b", redis_url, fs)
    add_agents(store, fs, 1, P.answers(after=0.1, talk=1.5))
    kw = dict(
        destination="5000",
        socket_target=a.address,
        variables={"socket_resume": "true"},
        dialplan_after_socket=after_socket(b),
    )
    talking = fs.place_call(caller_number="+4922100001", **kw)
    wait_for(lambda: store.get_agent("1001")["state"] == "in-call", what="talking")
    waiting = fs.place_call(caller_number="+4922100002", **kw)
    wait_for(lambda: (store.get_call(waiting.uuid) or {}).get("state") == "waiting", what="waiting")
    a.signal(signal.SIGTERM)
    wait_for(
        lambda: (store.get_call(waiting.uuid) or {}).get("owner") == "ctl-b",
        timeout=5,
        what="waiting caller handed to ctl-b",
    )
    assert talking.is_up  # the talk goes on while ctl-a drains
    assert a.wait(timeout=15) == 0
    assert talking.hangup_cause is not None  # ctl-a waited until the call ended
    waiting.wait_bridged(10)
    waiting.hangup()
    wait_for(lambda: store.get_agent("1001")["state"] == "idle", timeout=10, what="idle")


def test_reload_applies_a_good_config_and_refuses_a_bad_one(fs, procs, store, redis_url, tmp_path):
    a = serve(procs, tmp_path, "ctl-a", redis_url, fs)
    good = a.path.read_text()
    a.write_config(good + '\n[queues.sales]\nstrategy = "ring-all"\n')
    a.signal(signal.SIGHUP)
    wait_for(lambda: "sales" in store.configured_queues(), timeout=5, what="sales queue")
    # the log line is written after the queues are published: wait for it too
    wait_for(lambda: "config reloaded" in a.logtext(), timeout=5, what="reload logged")
    a.write_config(good.replace('strategy = "first-available"', 'strategy = "bogus"'))
    a.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in a.logtext(), timeout=5, what="refusal logged")
    # still serving with the old config
    add_agents(store, fs, 1, P.answers(after=0.1, talk=0.3))
    call = fs.place_call(destination="5000", socket_target=a.address)
    call.wait_bridged(5)
    call.hangup()
