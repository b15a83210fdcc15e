"""End-to-end scenarios on the stand-in and, with FSACD_TEST_FREESWITCH, on a real FreeSWITCH.

Every scenario runs twice through the ``switch`` fixture (tests/switch.py): ``[standin]``
always, ``[freeswitch]`` when ``FSACD_TEST_FREESWITCH=HOST:PORT`` names the inbound event
socket of a test switch with freeswitch/test/fsacd-test.xml in its default context (it is
skipped otherwise). fsacd is driven only through its real interfaces: the Store calls the CLI
makes (add and log in agents), the Redis state and the event stream ``fsacd:events``; the
controller runs in this process (a real ``fsacd serve`` process where one is killed). On a
real switch it listens on 127.0.0.1:8084, the test dialplan's socket address.

Real channels run their applications at 20 ms media ticks: every wait here has a generous
timeout, and times are printed (``pytest -s``), never asserted tightly.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import redis

from fsacd.acd.controller import Controller
from fsacd.core import consent
from fsacd.esl.client import FreeSwitchClient
from fsacd.state.store import Store
from tests.acd_harness import make_config
from tests.procs import CONFIG as SERVE_CONFIG
from tests.procs import ServeProcess, free_port
from tests.switch import SKIP_REASON, open_switch, poll

CALLER = "+4922129191999"
#: generous bounds for one step on a real switch (a stand-in step takes milliseconds)
STEP = 15.0

QUEUES = """
[queues.support]
strategy = "{strategy}"
ring_timeout = {ring_timeout}
wrap_up = 0.3
max_no_answer = 3
no_answer_delay = 0.5
busy_delay = 5
reject_delay = 5
{extra}

[queues.sales]
strategy = "ring-all"
ring_timeout = 5
wrap_up = 0.3
"""


def queues(strategy: str = "first-available", ring_timeout: int = 5, extra: str = "") -> str:
    return QUEUES.format(strategy=strategy, ring_timeout=ring_timeout, extra=extra)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=["standin", "freeswitch"])
def switch(request):
    """The switch of this run: the stand-in, or the real FreeSWITCH (skipped when unset)."""
    try:
        sw = open_switch(request.param)
    except LookupError:
        pytest.skip(SKIP_REASON)
    yield sw
    sw.stop()


class Acd:
    """A controller in this process, on the switch's socket address and a clean Redis."""

    def __init__(
        self,
        switch,
        redis_url: str,
        queue_text: str,
        extra_routes: str = "",
        freeswitch: dict | None = None,
        **server,
    ):
        inbound = "{}:{}".format(*switch.inbound)
        cfg = make_config(redis_url, queue_text, extra_routes=extra_routes, inbound=inbound)
        lh, lp = switch.listen
        cfg = dataclasses.replace(
            cfg,
            server=dataclasses.replace(cfg.server, listen=f"{lh}:{lp}", **server),
            freeswitch=dataclasses.replace(cfg.freeswitch, **(freeswitch or {})),
        )
        self.switch = switch
        self.cfg = cfg
        self.r = redis.Redis.from_url(redis_url, decode_responses=True)
        self.ctl = Controller(cfg, self.r, fs=FreeSwitchClient(switch.inbound, switch.password))
        self.ctl.start()
        if self.ctl.call_feed is not None:  # the calls take their events from it
            assert self.ctl.call_feed.wait_connected(STEP), "the shared event feed connected"
        switch.attach(self.ctl.address)
        self.store = self.ctl.store

    def stop(self) -> None:
        self.ctl.stop(timeout=2)

    def agent(self, kind: str, agent_id: str, queues: dict[str, int], login: bool = True) -> str:
        contact = self.switch.contact(kind, agent_id)
        self.store.add_agent(agent_id, contact, queues)
        if login:
            self.store.login(agent_id)
        return contact

    def agent_state(self, agent_id: str) -> dict:
        a = self.store.get_agent(agent_id)
        assert a is not None, agent_id
        return a

    def call(self, call_id: str) -> dict:
        return self.store.get_call(call_id) or {}

    def events(self, *types: str) -> list[dict]:
        out = [f for _, f in self.r.xrange(self.store.keys.events())]
        return [e for e in out if not types or e.get("type") in types]

    def wait_state(self, agent_id: str, *states: str, timeout: float = STEP) -> dict:
        poll(
            lambda: self.agent_state(agent_id)["state"] in states,
            timeout,
            lambda: f"agent {agent_id} {'/'.join(states)} (is {self.agent_state(agent_id)})",
        )
        return self.agent_state(agent_id)

    def wait_call(self, call_id: str, state: str, timeout: float = STEP) -> dict:
        poll(
            lambda: self.call(call_id).get("state") == state,
            timeout,
            lambda: f"call {call_id} {state} (is {self.call(call_id)})",
        )
        return self.call(call_id)


@pytest.fixture
def make_acd(switch, redis_url, monkeypatch):
    """``make_acd(queue_text, extra_routes="", **server_overrides)``: a started controller."""
    monkeypatch.setenv("FSACD_TEST_ESL_PASSWORD", switch.password)
    made: list[Acd] = []

    def make(
        queue_text: str = queues(), extra_routes: str = "", freeswitch: dict | None = None, **server
    ) -> Acd:
        acd = Acd(switch, redis_url, queue_text, extra_routes, freeswitch, **server)
        made.append(acd)
        return acd

    yield make
    try:
        switch.hangup_all()
    finally:
        for acd in made:
            acd.stop()


def settle(acd: Acd, *calls) -> None:
    """Hang the calls up; no channel left on the switch and no agent left holding a call."""
    for c in calls:
        c.hangup()
    for c in calls:
        c.wait_hangup(STEP)
    poll(lambda: acd.switch.channels() == 0, STEP, "no channel left", step=0.1)
    for a in acd.store.list_agents():
        acd.wait_state(a["id"], "idle")
        assert acd.agent_state(a["id"])["call"] == "", a["id"]


def report(switch, what: str, seconds: float | None) -> None:
    print(f"[{switch.name}] {what}: {seconds if seconds is None else round(seconds, 3)} s")


# --- strategies ----------------------------------------------------------------------------


def _fields(acd: Acd, per_agent: dict[str, dict[str, object]]) -> None:
    for aid, values in per_agent.items():
        acd.r.hset(acd.store.keys.agent(aid), mapping={k: str(v) for k, v in values.items()})


def _setup_most_idle(acd: Acd) -> None:
    now = time.time()
    ends = {"1001": now - 10, "1002": now - 100, "1003": now - 50}  # 1002 idle longest
    _fields(acd, {aid: {"last_call_end": f"{t:.3f}"} for aid, t in ends.items()})


def _setup_round_robin(acd: Acd) -> None:
    acd.r.hset(acd.store.keys.queue("support"), "rr_last", "1")  # position 1 was offered last


def _setup_fewest_calls(acd: Acd) -> None:
    _fields(acd, {"1001": {"answered": 5}, "1002": {"answered": 3}, "1003": {"answered": 1}})


def _setup_least_talk(acd: Acd) -> None:
    _fields(acd, {"1001": {"talk_time": 100}, "1002": {"talk_time": 10}, "1003": {"talk_time": 50}})


ALL = {"1001", "1002", "1003"}
STRATEGY_CASES = [
    ("first-available", None, {"1001"}),
    ("most-idle", _setup_most_idle, {"1002"}),
    ("ring-all", None, ALL),
    ("round-robin", _setup_round_robin, {"1002"}),
    ("fewest-calls", _setup_fewest_calls, {"1003"}),
    ("least-talk-time", _setup_least_talk, {"1002"}),
    ("random", None, ALL),
]


@pytest.mark.parametrize(
    "strategy,setup,allowed", STRATEGY_CASES, ids=[c[0] for c in STRATEGY_CASES]
)
def test_strategy_bridges_an_agent_it_allows(switch, make_acd, strategy, setup, allowed):
    acd = make_acd(queues(strategy))
    for pos, aid in enumerate(sorted(ALL), start=1):
        acd.agent("agent", aid, {"support": pos})
    if setup is not None:
        setup(acd)
    call = switch.place_call(destination="5000", caller_number=CALLER)
    leg = call.wait_bridged(STEP)
    report(switch, f"{strategy}: placed -> bridged", call.latency)
    assert leg.agent in allowed, (leg.agent, allowed)
    acd.wait_state(leg.agent, "in-call")
    rec = acd.wait_call(call.uuid, "bridged")
    assert rec["agent"] == leg.agent
    if strategy == "ring-all":
        assert [sorted(o) for o in call.offers()] == [sorted(ALL)]  # one bridge, every agent
        for aid in ALL - {leg.agent}:  # the losers are freed without penalty
            a = acd.wait_state(aid, "idle")
            assert a["missed"] == 0 and a["no_answer_streak"] == 0
    else:
        assert call.offers() == [[leg.agent]]
        assert call.rung_agents() == [leg.agent]
    settle(acd, call)
    assert acd.call(call.uuid)["outcome"] == "answered"


def test_three_callers_three_agents_each_gets_a_different_agent(switch, make_acd):
    acd = make_acd()
    for pos, aid in enumerate(sorted(ALL), start=1):
        acd.agent("agent", aid, {"support": pos})
    calls = [
        switch.place_call(destination="5000", caller_number=f"+49221291910{i:02d}")
        for i in range(3)
    ]
    legs = [c.wait_bridged(STEP) for c in calls]
    for c in calls:
        report(switch, f"caller {c.uuid[:8]} placed -> bridged", c.latency)
    assert {leg.agent for leg in legs} == ALL  # each to a different agent
    assert max(c.latency for c in calls) < 5.0, [c.latency for c in calls]
    for aid in ALL:
        acd.wait_state(aid, "in-call")
    settle(acd, *calls)


# --- offer outcomes ------------------------------------------------------------------------


def test_ring_timeout_goes_to_the_next_agent_and_counts_a_miss(switch, make_acd):
    acd = make_acd(queues(ring_timeout=1))
    acd.agent("noanswer", "1001", {"support": 1})
    acd.agent("agent", "1002", {"support": 2})
    call = switch.place_call(destination="5000", caller_number=CALLER)
    leg = call.wait_bridged(STEP)
    report(switch, "ring timeout 1 s, then bridged to the next agent", call.latency)
    assert leg.agent == "1002"
    assert call.offers() == [["1001"], ["1002"]]
    assert call.rung_agents() == ["1001", "1002"]
    a = acd.wait_state("1001", "idle")  # never left ringing
    assert a["missed"] == 1 and a["no_answer_streak"] == 1 and a["call"] == ""
    missed = acd.events("agent-missed")
    assert [(e["agent"], e["outcome"]) for e in missed] == [("1001", "no-answer")]
    settle(acd, call)


def test_busy_and_reject_are_told_apart_then_a_good_agent_answers(switch, make_acd):
    acd = make_acd()
    acd.agent("busy", "1001", {"support": 1})
    acd.agent("reject", "1002", {"support": 2})
    acd.agent("agent", "1003", {"support": 3})
    call = switch.place_call(destination="5000", caller_number=CALLER)
    leg = call.wait_bridged(STEP)
    report(switch, "busy, reject, then bridged", call.latency)
    assert leg.agent == "1003"
    assert call.offers() == [["1001"], ["1002"], ["1003"]]
    assert call.rung_agents() == ["1001", "1002", "1003"]
    outcomes = {e["agent"]: e["outcome"] for e in acd.events("agent-missed")}
    assert outcomes == {"1001": "busy", "1002": "reject"}
    for aid in ("1001", "1002"):
        a = acd.agent_state(aid)
        assert a["missed"] == 0 and a["no_answer_streak"] == 0  # only no-answers count
        assert a["state"] == "idle" and float(a["ready_at"]) > time.time()  # the delay
    settle(acd, call)


def test_ring_all_the_answering_phone_beats_early_media(switch, make_acd):
    acd = make_acd()
    acd.agent("early", "3001", {"sales": 1})
    acd.agent("slow", "3002", {"sales": 2})
    call = switch.place_call(destination="5001", caller_number=CALLER)
    leg = call.wait_bridged(STEP)
    report(switch, "ring-all early media vs slow (1.5 s) phone", call.latency)
    assert leg.agent == "3002"
    assert call.latency is not None and call.latency >= 1.4  # not bridged to the early media
    assert [sorted(o) for o in call.offers()] == [["3001", "3002"]]
    assert sorted(call.rung_agents()) == ["3001", "3002"]
    a = acd.wait_state("3001", "idle")
    assert a["missed"] == 0 and a["call"] == ""
    assert acd.events("agent-missed") == []
    settle(acd, call)


# --- the caller hangs up -------------------------------------------------------------------


def test_caller_hangs_up_while_waiting(switch, make_acd):
    acd = make_acd()
    call = switch.place_call(destination="5000", caller_number=CALLER)
    acd.wait_call(call.uuid, "waiting")
    call.wait_app("playback", STEP, data="local_stream://moh")
    call.hangup("ORIGINATOR_CANCEL")
    rec = acd.wait_call(call.uuid, "ended")
    assert rec["outcome"] == "abandoned"
    assert acd.store.queue_view("support")["waiting"] == []
    # the end is the documented call-abandoned event (docs/redis.md), with the place it left
    ends = [e for e in acd.events("call-ended", "call-abandoned") if e["call"] == call.uuid]
    assert [(e["type"], e["position"]) for e in ends] == [("call-abandoned", "1")]
    settle(acd, call)


#: a second hold music that needs no sound files (the test switch has none)
VIP_MOH = "tone_stream://%(1000,0,440);loops=-1"


def test_a_moved_call_hears_its_new_queues_music(switch, make_acd):
    acd = make_acd(queues() + f'\n[queues.vip]\nmoh = "{VIP_MOH}"\n')
    call = switch.place_call(destination="5000", caller_number=CALLER)
    acd.wait_call(call.uuid, "waiting")
    call.wait_app("playback", STEP, data="local_stream://moh")
    ok, old = acd.store.supervisor_move(call.uuid, "vip", by="test")  # as fsacd call move
    assert (ok, old) == (True, "support")
    call.wait_app("playback", STEP, data=VIP_MOH)
    rec = acd.call(call.uuid)
    assert (rec["state"], rec["queue"]) == ("waiting", "vip")
    settle(acd, call)


def test_caller_hangs_up_while_agents_ring(switch, make_acd):
    acd = make_acd()
    acd.agent("noanswer", "3001", {"sales": 1})
    acd.agent("noanswer", "3002", {"sales": 2})
    call = switch.place_call(destination="5001", caller_number=CALLER)
    acd.wait_state("3001", "ringing")
    acd.wait_state("3002", "ringing")
    poll(lambda: len(call.rung_agents()) == 2, STEP, "both phones ringing")
    call.hangup("ORIGINATOR_CANCEL")
    rec = acd.wait_call(call.uuid, "ended")
    assert rec["outcome"] == "abandoned"
    ends = [e for e in acd.events("call-ended", "call-abandoned") if e["call"] == call.uuid]
    assert [e["type"] for e in ends] == ["call-abandoned"]
    for aid in ("3001", "3002"):
        a = acd.wait_state(aid, "idle")
        assert a["missed"] == 0 and a["call"] == ""
    settle(acd, call)  # the ringing legs are gone too


def test_caller_hangs_up_while_bridged(switch, make_acd):
    acd = make_acd()
    acd.agent("agent", "1001", {"support": 1})
    call = switch.place_call(destination="5000", caller_number=CALLER)
    call.wait_bridged(STEP)
    acd.wait_state("1001", "in-call")
    time.sleep(0.3)  # some talk time
    call.hangup()
    acd.wait_state("1001", "wrap-up", "idle")
    a = acd.wait_state("1001", "idle")
    assert a["answered"] == 1 and a["talk_time"] > 0.2 and a["call"] == ""
    rec = acd.wait_call(call.uuid, "ended")
    assert rec["outcome"] == "answered" and rec["agent"] == "1001"
    settle(acd, call)


# --- waiting -------------------------------------------------------------------------------


def test_hold_music_then_an_agent_logs_in_and_gets_the_call(switch, make_acd):
    acd = make_acd()
    acd.agent("agent", "1001", {"support": 1}, login=False)
    call = switch.place_call(destination="5000", caller_number=CALLER)
    acd.wait_call(call.uuid, "waiting")
    call.wait_app("playback", STEP, data="local_stream://moh")
    assert call.answered and not call.rung_agents()
    t_login = time.time()
    acd.store.login("1001")
    leg = call.wait_bridged(STEP)
    report(switch, "agent login -> bridged", call.bridged_at - t_login)
    assert leg.agent == "1001"
    settle(acd, call)


# --- IVR -----------------------------------------------------------------------------------

IVR = """
[ivr.main]
prompt = "tone_stream://%(100,0,600)"
invalid_prompt = "tone_stream://%(100,0,300)"
timeout = 3
max_tries = 2
default = "queue:support"

[ivr.main.options]
"1" = "queue:support"
"2" = "ivr:account"
"0" = "hangup"

[ivr.account]
timeout = 3

[ivr.account.collect]
var = "account"
min = 4
max = 8
terminator = "#"
prompt = "tone_stream://%(100,0,500)"
regex = "\\\\d+"
next = "queue:sales"
"""
IVR_ROUTES = '"5003" = "ivr:main"\n'


def _reads(call) -> int:
    return sum(1 for app, _ in call.apps() if app == "play_and_get_digits")


def test_ivr_digit_routes_the_caller_to_the_chosen_queue(switch, make_acd):
    acd = make_acd(queues() + IVR, extra_routes=IVR_ROUTES)
    acd.agent("agent", "1001", {"support": 1})
    acd.agent("agent", "2001", {"sales": 1})
    call = switch.place_call(destination="5003", caller_number=CALLER)
    call.wait_app("play_and_get_digits", STEP)
    call.send_dtmf("1")
    leg = call.wait_bridged(STEP)
    assert leg.agent == "1001"
    ev = acd.events("call-ivr")
    assert [(e["action"], e["target"], e["reason"]) for e in ev] == [
        ("queue", "support", "selected")
    ]
    assert acd.call(call.uuid)["queue"] == "support"
    settle(acd, call)


def test_ivr_sub_menu_collects_digits_and_routes_to_sales(switch, make_acd):
    acd = make_acd(queues() + IVR, extra_routes=IVR_ROUTES)
    acd.agent("agent", "1001", {"support": 1})
    acd.agent("agent", "2001", {"sales": 1})
    call = switch.place_call(destination="5003", caller_number=CALLER)
    call.wait_app("play_and_get_digits", STEP)
    call.send_dtmf("2")
    poll(lambda: _reads(call) >= 2, STEP, "the account prompt")
    call.send_dtmf("4711#")
    leg = call.wait_bridged(STEP)
    assert leg.agent == "2001"
    rec = acd.call(call.uuid)
    assert rec["queue"] == "sales" and rec["ivr_account"] == "4711"
    assert "4711" not in acd.events("call-ivr")[0]["path"]
    settle(acd, call)


# --- recording with consent ----------------------------------------------------------------

RECORDING = """
recording = "ask"
recording_notice = "tone_stream://%(200,0,500)"
recording_path = "fsacd-test-recordings/{queue}/{call}.wav"
"""


def _consenting_agent(acd: Acd, agent_id: str = "1001") -> None:
    acd.agent("agent", agent_id, {"support": 1})
    acd.r.hset(acd.store.keys.agent(agent_id), mapping=consent.give_agent_consent(time.time()))


def test_recording_starts_when_the_caller_presses_the_consent_key(switch, make_acd):
    acd = make_acd(queues(extra=RECORDING))
    _consenting_agent(acd)
    call = switch.place_call(destination="5000", caller_number=CALLER)
    call.wait_app("play_and_get_digits", STEP)  # the notice, read with the key
    call.send_dtmf("1")
    call.wait_bridged(STEP)
    poll(lambda: acd.events("recording-started"), STEP, "recording-started event")
    rec = acd.call(call.uuid)
    assert rec["recorded"] == "yes" and rec["rec_reason"] == "consented"
    poll(call.recording_started, STEP, "the switch records the call")
    paths = call.recording_paths()
    assert len(paths) == 1 and paths[0].endswith(rec["rec_path"]), (paths, rec["rec_path"])
    # docs/config.md: "A relative path is relative to FreeSWITCH's recordings directory."
    rec_dir = switch.recordings_dir()
    if rec_dir is not None:
        assert paths[0] == f"{rec_dir.rstrip('/')}/{rec['rec_path']}", (paths[0], rec_dir)
    settle(acd, call)


def test_no_consent_key_means_no_recording(switch, make_acd):
    acd = make_acd(queues(extra=RECORDING))
    _consenting_agent(acd)
    call = switch.place_call(destination="5000", caller_number=CALLER)
    call.wait_app("play_and_get_digits", STEP)
    call.wait_bridged(STEP + 6)  # after the 5 s the question waits for a key
    poll(lambda: acd.events("recording-decided"), STEP, "the recording decision")
    rec = acd.call(call.uuid)
    assert rec["recorded"] == "no" and rec["rec_reason"] == "caller-no-answer"
    assert acd.events("recording-started") == []
    assert not call.recording_started()
    settle(acd, call)


# --- caller ID on the agent's phone --------------------------------------------------------


@pytest.fixture
def salt(monkeypatch):
    monkeypatch.setenv("FSACD_HISTORY_SALT", "test-salt-0123456789")


def test_agent_sees_the_caller(switch, make_acd, salt):
    acd = make_acd(queues(extra='agent_sees = "caller"'))
    acd.agent("agent", "1001", {"support": 1})
    call = switch.place_call(destination="5000", caller_number=CALLER, caller_name="Erika Muster")
    leg = call.wait_bridged(STEP)
    assert leg.caller_id_number == CALLER
    assert leg.caller_id_name == "Erika Muster"
    assert not leg.hide_number
    assert leg.variables.get("fsacd_agent") == "1001"
    assert leg.sip_headers.get("X-Fsacd-Call") == call.uuid  # the screen pop's headers
    settle(acd, call)


def test_anonymous_queue_hides_the_caller_from_the_agent(switch, make_acd, salt):
    acd = make_acd(queues(extra='agent_sees = "anonymous"'))
    acd.agent("agent", "1001", {"support": 1})
    call = switch.place_call(destination="5000", caller_number=CALLER, caller_name="Erika Muster")
    leg = call.wait_bridged(STEP)
    assert leg.caller_id_number in ("anonymous", "")
    assert leg.hide_number and leg.hide_name
    shown = [leg.caller_id_number, leg.caller_id_name, *leg.sip_headers.values()]
    assert not any(CALLER in v or CALLER[1:] in v or "Erika" in v for v in shown), shown
    rec = acd.call(call.uuid)
    assert rec["number"] == "" and rec["number_status"] == "hidden"
    settle(acd, call)


# --- a controller dies ---------------------------------------------------------------------


@pytest.fixture
def serve(switch, redis_url, tmp_path, monkeypatch):
    """``serve()``: a real ``fsacd serve`` process (so it can be killed) on the switch's
    socket address, lease 1 s."""
    monkeypatch.setenv("FSACD_SWITCH_E2E_PASSWORD", switch.password)
    started: list[ServeProcess] = []

    def start() -> ServeProcess:
        host, port = switch.listen
        p = ServeProcess(
            tmp_path, "ctl-dies", redis_url, switch.inbound, lease=1.0, port=port or free_port()
        )
        text = SERVE_CONFIG.format(**p.params)
        text = text.replace('"127.0.0.1:', f'"{host}:', 1)
        text = text.replace("FSACD_TEST_ESL_PASSWORD", "FSACD_SWITCH_E2E_PASSWORD")
        p.write_config(text)
        started.append(p)
        p.start()
        switch.attach((host, p.port))
        return p

    yield start
    try:
        switch.hangup_all()
    finally:
        for p in started:
            p.stop()


def test_controller_killed_while_a_caller_waits_sends_it_on_in_the_dialplan(
    switch, serve, make_acd, redis_url
):
    proc = serve()
    store = _store(redis_url)
    call = switch.place_call(destination="5000", caller_number=CALLER)
    poll(lambda: (store.get_call(call.uuid) or {}).get("state") == "waiting", STEP, "waiting")
    call.wait_app("playback", STEP, data="local_stream://moh")
    assert call.variable("fsacd_test_after_socket") is None
    t_kill = time.time()
    proc.kill9()
    call.wait_app("set", STEP, data="fsacd_test_after_socket=true")
    report(switch, "controller killed -> caller goes on after socket", time.time() - t_kill)
    assert call.variable("fsacd_test_after_socket") == "true"
    assert call.is_up  # not cut: the dialplan after socket has it now
    # a survivor takes the dead controller's waiting caller out of the queue
    acd = make_acd(queues(), lease=1.0, recovery_interval=0.3)
    rec = acd.wait_call(call.uuid, "ended")
    assert rec["outcome"] == "controller-lost"
    assert acd.store.queue_view("support")["waiting"] == []
    call.hangup()
    call.wait_hangup(STEP)
    poll(lambda: switch.channels() == 0, STEP, "no channel left", step=0.1)


def test_controller_killed_while_a_caller_talks_keeps_the_bridge(
    switch, serve, make_acd, redis_url
):
    proc = serve()
    store = _store(redis_url)
    store.add_agent("1001", switch.contact("agent", "1001"), {"support": 1})
    store.login("1001")
    call = switch.place_call(destination="5000", caller_number=CALLER)
    leg = call.wait_bridged(STEP)
    assert leg.agent == "1001"
    poll(lambda: store.get_agent("1001")["state"] == "in-call", STEP, "1001 in call")
    proc.kill9()
    assert call.stays_bridged(3.0), "the bridge did not survive the controller's death"
    assert call.variable("fsacd_test_after_socket") is None  # not sent on in the dialplan
    # a new controller on the same address takes over once the dead one's lease lapsed
    acd = make_acd(queues(), lease=1.0, recovery_interval=0.3)
    assert acd.agent_state("1001")["state"] == "in-call"  # still talking: not freed
    call.hangup()
    call.wait_hangup(STEP)
    poll(lambda: switch.channels() == 0, STEP, "agent leg gone with the caller", step=0.1)
    a = acd.wait_state("1001", "idle", "wrap-up", timeout=STEP)
    assert a["call"] == ""


def _store(redis_url: str) -> Store:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    s = Store(r, controller_id="test")
    s.sync_queues(["support"])
    return s


# --- monitoring: the figures and /metrics after a miniature shift ----------------------------


def test_small_shift_figures_metrics_and_health(switch, make_acd):
    """4 agents, 5 callers, one gives up while waiting: the counters, ``fsacd web``'s /metrics
    and serve's /healthz and /readyz say so (docs/monitoring.md)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from fsacd.state.stats import StatsStore
    from fsacd.web.server import make_server

    http = '\n[http]\nlisten = "127.0.0.1:0"\n'
    acd = make_acd(queues(extra="service_level_seconds = 20") + http)
    web = make_server(acd.cfg, StatsStore.of(acd.store), ("127.0.0.1", 0))
    web.start()
    try:
        agents = ["1001", "1002", "1003", "1004"]
        for pos, aid in enumerate(agents, start=1):
            acd.agent("agent", aid, {"support": pos})
        calls = [
            switch.place_call(destination="5000", caller_number=f"+49221291910{i:02d}")
            for i in range(4)
        ]
        for c in calls:
            c.wait_bridged(STEP)
        quitter = switch.place_call(destination="5000", caller_number="+4922129191099")
        acd.wait_call(quitter.uuid, "waiting")
        quitter.wait_app("playback", STEP, data="local_stream://moh")
        quitter.hangup("ORIGINATOR_CANCEL")
        acd.wait_call(quitter.uuid, "ended")
        settle(acd, *calls, quitter)
        f = StatsStore.of(acd.store).queue_figures(["support"], time.time() - 3600)["support"]
        report(switch, "service level", f.service_level)
        assert (f.offered, f.answered, f.abandoned) == (5, 4, 1)
        assert f.answered_in_sl == 4 and f.handled == 4
        host, port = web.address[:2]
        text = httpx.get(f"http://{host}:{port}/metrics", timeout=10).text
        got = {
            (s.name, s.labels.get("outcome")): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.labels.get("queue") == "support"
        }
        assert got[("fsacd_calls_total", "answered")] == 4
        assert got[("fsacd_calls_total", "abandoned")] == 1
        assert got[("fsacd_calls_offered_total", None)] == 5
        h, p = acd.ctl.health.address
        assert httpx.get(f"http://{h}:{p}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"http://{h}:{p}/readyz", timeout=10).status_code == 200
    finally:
        web.stop()
