"""fsacd.pop.screen on a real Redis: prepare/offer/answer/finish, delivery, pop_fields, webhook, SIP
headers, ``fsacd pop watch``."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import gevent
import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry

from fsacd.cli.main import main
from fsacd.config import ConfigError, load_text
from fsacd.core import numbers
from fsacd.core.dialstring import var_value
from fsacd.pop.screen import ScreenPop, caller_region, clean_ivr, sip_headers
from fsacd.state.keys import Keys
from fsacd.tools.pop_bench import bench
from tests.test_crm import HttpStub

E164 = "+49301234567"
NUM = numbers.normalise("030 1234567", "DE")
SECRET = "webhook-shared-secret"

BASE_CONFIG = """
[freeswitch]
default_region = "DE"

[queues.support]
display_name = "Support"

[queues.private]
pop_fields = ["contacts", "contact.name"]

[queues.everything]
pop_fields = ["number", "contacts", "contact.*"]

[queues.uk]
region = "gb"
"""


def make_pop(r, extra: str = "", env: dict | None = None) -> ScreenPop:
    cfg = load_text(BASE_CONFIG + extra, env={})
    return ScreenPop(r, Keys(), cfg, env=env or {})


@pytest.fixture
def sp(r):
    sp = make_pop(r)
    sp.contacts.put(
        {
            "id": "c1",
            "name": "Anna Schmidt",
            "company": "Schmidt GmbH",
            "status": "existing",
            "tier": "gold",
            "account_manager": "Bob",
            "numbers": [{"label": "phone", "number": E164}],
        }
    )
    return sp


def stream(r, agent: str) -> list[dict]:
    return [json.loads(f["pop"]) for _id, f in r.xrange(Keys().agent_pops(agent))]


def test_offer_publishes_to_pubsub_and_stream(r, sp):
    ps = r.pubsub()
    ps.subscribe(Keys().agent_pops("1001"))
    assert ps.get_message(timeout=1)["type"] == "subscribe"
    sp.history.record("old-call", NUM, False, "support", "1002", "answered", 1_700_000_000)
    sp.prepare("call-1", "support", NUM, False, "ANNA S", {"menu": "2", "account": "4711"})
    sip = sp.offered("call-1", ["1001"], 12.34)
    msg = ps.get_message(timeout=1)
    ps.close()
    assert msg["channel"] == "fsacd:pop:agent:1001"
    pop = json.loads(msg["data"])
    assert stream(r, "1001") == [pop]
    ts = pop.pop("ts")
    assert abs(ts - time.time()) < 5
    assert pop == {
        "type": "pop",
        "stage": "offer",
        "call": "call-1",
        "queue": "support",
        "queue_name": "Support",
        "agent": "1001",
        "match": "found",
        "hidden": False,
        "number": E164,
        "caller_name": "ANNA S",
        "contacts": [
            {
                "id": "c1",
                "name": "Anna Schmidt",
                "company": "Schmidt GmbH",
                "status": "existing",
                "tier": "gold",
                "numbers": [{"label": "phone", "number": E164}],
                "source": "store",
            }
        ],
        "matches": 1,
        "ivr": {"menu": "2", "account": "4711"},
        "waited": 12.3,
        "history": [
            {
                "ts": 1_700_000_000,
                "call": "old-call",
                "queue": "support",
                "agent": "1002",
                "outcome": "answered",
                "date": "2023-11-14T22:13:20Z",
            }
        ],
    }
    assert sip == {
        "1001": {
            "sip_h_X-Fsacd-Call": "call-1",
            "sip_h_X-Fsacd-Queue": "support",
            "sip_h_X-Fsacd-Match": "found",
            "sip_h_X-Fsacd-Number": E164,
            "sip_h_X-Fsacd-Contact": "c1",
            "sip_h_X-Fsacd-Contact-Name": "Anna Schmidt",
            "sip_h_X-Fsacd-Company": "Schmidt GmbH",
            "sip_h_X-Fsacd-Tier": "gold",
            "sip_h_X-Fsacd-Matches": "1",
            "sip_h_X-Fsacd-Waited": "12",
        }
    }
    assert r.ttl(Keys().agent_pops("1001")) > 0


def test_unknown_number_is_a_new_contact_with_the_number(r, sp):
    other = numbers.normalise("+44 20 7946 0958", "DE")
    sp.prepare("call-2", "support", other, False, "")
    sp.offered("call-2", ["1001"], 1.0)
    (pop,) = stream(r, "1001")
    assert pop["match"] == "none"
    assert pop["contacts"] == [] and pop["matches"] == 0
    assert pop["new_contact"] == {"numbers": [{"label": "phone", "number": "+442079460958"}]}
    # an invalid number: new contact without a number, nothing looked up
    sp.prepare("call-3", "support", numbers.normalise("12345", "DE"), False, "Max")
    sp.offered("call-3", ["1002"], 1.0)
    (pop,) = stream(r, "1002")
    assert pop["match"] == "no-number" and pop["new_contact"] == {"name": "Max"}
    assert "number" not in pop


def test_switchboard_lists_every_contact(r, sp):
    sp.contacts.put({"id": "c2", "name": "Reception", "numbers": [{"number": E164}]})
    sp.prepare("call-s", "support", NUM, False, "")
    sip = sp.offered("call-s", ["1001"], 0)
    (pop,) = stream(r, "1001")
    assert [c["id"] for c in pop["contacts"]] == ["c1", "c2"] and pop["matches"] == 2
    assert sip["1001"]["sip_h_X-Fsacd-Matches"] == "2"


def test_pop_fields_are_respected(r, sp):
    sp.prepare("call-p", "private", NUM, False, "Caller", {"pin": "1234"})
    sip = sp.offered("call-p", ["1001"], 5)
    (pop,) = stream(r, "1001")
    assert set(pop) == {
        "type",
        "stage",
        "ts",
        "call",
        "queue",
        "agent",
        "match",
        "hidden",
        "contacts",
        "matches",
    }
    assert pop["contacts"] == [{"name": "Anna Schmidt", "source": "store"}]
    assert sip["1001"] == {
        "sip_h_X-Fsacd-Call": "call-p",
        "sip_h_X-Fsacd-Queue": "private",
        "sip_h_X-Fsacd-Match": "found",
        "sip_h_X-Fsacd-Contact-Name": "Anna Schmidt",
        "sip_h_X-Fsacd-Matches": "1",
    }
    # contact.* shows free-form fields too
    sp.prepare("call-e", "everything", NUM, False, "")
    sp.offered("call-e", ["1002"], 5)
    (pop,) = stream(r, "1002")
    assert pop["contacts"][0]["account_manager"] == "Bob" and pop["number"] == E164
    assert "ivr" not in pop and "waited" not in pop and "history" not in pop


def test_new_contact_gets_no_number_when_the_queue_hides_it(r):
    sp = make_pop(r, '[queues.nonum]\npop_fields = ["new_contact", "caller_name"]\n')
    sp.prepare("call-n", "nonum", NUM, False, "Max")
    sp.offered("call-n", ["1001"], 0)
    (pop,) = stream(r, "1001")
    assert pop["new_contact"] == {"name": "Max"} and "number" not in pop


def test_ring_all_answer_withdraw_and_finish(r, sp):
    sp.prepare("call-r", "support", NUM, False, "")
    sip = sp.offered("call-r", ["a1", "a2", "a3"], 10.0)
    assert set(sip) == {"a1", "a2", "a3"}
    assert sip["a1"]["sip_h_X-Fsacd-Call"] == "call-r"
    sp.clock = lambda: time.time() + 4
    sp.answered("call-r", "a2")
    answered = stream(r, "a2")[-1]
    assert answered["stage"] == "answered" and answered["contacts"][0]["id"] == "c1"
    assert 13.5 <= answered["waited"] <= 15
    for other in ("a1", "a3"):
        last = stream(r, other)[-1]
        assert (last["stage"], last["reason"]) == ("withdrawn", "answered-elsewhere")
        assert set(last) == {"type", "stage", "ts", "call", "queue", "agent", "reason"}
    sp.finished("call-r", "a2", "answered")
    ended = stream(r, "a2")[-1]
    assert (ended["stage"], ended["outcome"]) == ("ended", "answered")
    assert len(stream(r, "a1")) == 2  # no second withdrawal after the answer
    assert r.exists(Keys().call_pop("call-r")) == 0
    (entry,) = sp.history.previous(NUM, False)
    assert (entry["call"], entry["queue"], entry["agent"], entry["outcome"]) == (
        "call-r",
        "support",
        "a2",
        "answered",
    )


def test_new_offer_withdraws_the_earlier_agents(r, sp):
    sp.prepare("call-o", "support", NUM, False, "")
    sp.offered("call-o", ["a1"], 1)
    sp.offered("call-o", ["a2"], 20)
    assert [p["stage"] for p in stream(r, "a1")] == ["offer", "withdrawn"]
    assert stream(r, "a1")[-1]["reason"] == "offer-ended"
    sp.withdrawn("call-o", ["a2"])
    assert stream(r, "a2")[-1]["stage"] == "withdrawn"
    sp.finished("call-o", None, "abandoned")
    assert len(stream(r, "a2")) == 2  # a2 was already withdrawn
    assert sp.history.previous(NUM, False)[0]["outcome"] == "abandoned"


def test_offer_before_prepare_is_completed_later(r, sp):
    sip = sp.offered("call-l", ["a1"], 2)
    (bare,) = stream(r, "a1")
    assert bare["match"] == "pending" and "number" not in bare and "contacts" not in bare
    assert sip["a1"]["sip_h_X-Fsacd-Match"] == "pending"
    sp.prepare("call-l", "support", NUM, False, "")
    full = stream(r, "a1")[-1]
    assert (full["stage"], full["match"], full["number"]) == ("offer", "found", E164)


def test_the_current_queue_decides_the_fields(r, sp):
    sp.prepare("call-m", "support", NUM, False, "")
    r.hset(Keys().call("call-m"), "queue", "private")  # the call overflowed
    sp.offered("call-m", ["a1"], 1)
    (pop,) = stream(r, "a1")
    assert pop["queue"] == "private" and "number" not in pop


def test_offer_is_fast_and_needs_no_http(r, sp):
    sp.prepare("call-f", "support", NUM, False, "")
    t0 = time.perf_counter()
    sp.offered("call-f", ["a1"], 1)
    assert time.perf_counter() - t0 < 0.05


def test_hostile_values_in_sip_headers(r):
    sp = make_pop(r)
    hostile = "Evil\r\n,|[x]{y}'\"${system(rm -rf /)}:_:^^:a\\b; <sip:x> \x00\u202e"
    sp.contacts.put(
        {
            "id": "c-9",
            "name": hostile,
            "company": "ACME}],user/666@evil",
            "tier": "^^|gold",
            "numbers": [{"number": E164}],
        }
    )
    sp.prepare("call-x", "support", NUM, False, hostile)
    sip = sp.offered("call-x", ["a1"], 1)["a1"]
    assert sip["sip_h_X-Fsacd-Contact-Name"] == "Evil x y system rm -rf / :-: :a b sip:x"
    for name, value in sip.items():
        assert re.fullmatch(r"sip_h_X-Fsacd-[A-Za-z-]+", name)
        assert re.fullmatch(r"[\w .@+:/-]*", value) and ":_:" not in value
        assert value == var_value(value) and len(value) <= 256
    # headers straight from a crafted pop dict
    out = sip_headers({"call": "x,y", "queue": "q]", "match": "${x}", "waited": 3.9})
    assert out == {
        "sip_h_X-Fsacd-Call": "x y",
        "sip_h_X-Fsacd-Queue": "q",
        "sip_h_X-Fsacd-Match": "x",
        "sip_h_X-Fsacd-Waited": "3",
    }


def test_ivr_is_cleaned():
    ivr = {f"k{i}": str(i) for i in range(30)}
    ivr["long"] = "9" * 1000
    out = clean_ivr({**ivr, "none": None})
    assert len(out) == 20 and "none" not in out
    assert clean_ivr({"x": "1" * 300})["x"] == "1" * 256
    assert clean_ivr(None) == {}


def test_caller_region():
    cfg = load_text(BASE_CONFIG, env={})
    assert caller_region(cfg, "support") == "DE"
    assert caller_region(cfg, "uk") == "GB"
    assert caller_region(cfg, "uk", {"variable_fsacd_region": "us"}) == "US"
    assert caller_region(cfg, "uk", {"variable_fsacd_region": "XX"}) == "GB"
    assert caller_region(cfg, "nope", {"fsacd_region": "fr"}) == "FR"


def test_nothing_raises_when_redis_is_down():
    down = redis.Redis(host="127.0.0.1", port=9, decode_responses=True, retry=Retry(NoBackoff(), 0))
    sp = ScreenPop(down, Keys(), load_text(BASE_CONFIG, env={}), env={})
    sp.prepare("c", "support", NUM, False, "")
    assert sp.offered("c", ["a1", "bad id"], 1) == {"a1": {}}
    sp.answered("c", "a1")
    sp.withdrawn("c", ["a1"])
    sp.finished("c", "a1", "answered")


def test_benchmark_runs_well_under_target(r):
    result = bench(n=100, r=r)
    assert result["n"] == 100 and result["p50_ms"] < 5
    assert r.keys("*") == []


# --- webhook --------------------------------------------------------------------------------


def hook_config(server, timeout=1.0):
    return (
        "[queues.hooked]\n"
        f'webhook_url = "{server.base}/hook"\n'
        'webhook_secret_env = "HOOK_SECRET"\n'
        f"webhook_timeout = {timeout}\n"
    )


@pytest.fixture
def stub():
    servers = []

    def make(handler):
        servers.append(HttpStub(handler))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def test_webhook_is_signed(r, stub):
    server = stub(lambda environ, body: ("204 No Content", b"", 0))
    sp = make_pop(r, hook_config(server), env={"HOOK_SECRET": SECRET})
    sp.contacts.put({"id": "c1", "name": "Anna", "numbers": [{"number": E164}]})
    sp.prepare("call-w", "hooked", NUM, False, "")
    sp.offered("call-w", ["a1"], 3)
    sp.webhooks.join(timeout=2)
    (req,) = server.requests
    assert req["method"] == "POST" and req["path"] == "/hook"
    assert req["content_type"].startswith("application/json")
    expected = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Fsacd-Signature"] == expected
    assert req["headers"]["X-Fsacd-Stage"] == "offer"
    body = json.loads(req["body"])
    assert body == stream(r, "a1")[0]
    assert body["contacts"][0]["name"] == "Anna"
    sp.answered("call-w", "a1")
    sp.webhooks.join(timeout=2)
    assert json.loads(server.requests[1]["body"])["stage"] == "answered"
    assert sp.webhooks.stats == {"sent": 2, "failed": 0, "dropped": 0}


def test_slow_webhook_never_delays_the_offer_and_is_not_retried(r, stub, caplog):
    server = stub(lambda environ, body: ("200 OK", b"{}", 2.0))
    sp = make_pop(r, hook_config(server, timeout=0.2), env={"HOOK_SECRET": SECRET})
    sp.contacts.put({"id": "c1", "name": "Anna Secret", "numbers": [{"number": E164}]})
    sp.prepare("call-s", "hooked", NUM, False, "")
    with caplog.at_level("DEBUG"):
        t0 = time.perf_counter()
        sp.offered("call-s", ["a1"], 3)
        assert time.perf_counter() - t0 < 0.05
        sp.webhooks.join(timeout=2)
        assert time.perf_counter() - t0 < 0.6
    assert server.count == 1
    assert sp.webhooks.stats["failed"] == 1
    assert "webhook of queue hooked (call call-s, offer) failed: timed out" in caplog.text
    assert "Anna" not in caplog.text and "4930" not in caplog.text


def test_webhook_without_secret_is_not_sent(r, stub, caplog):
    server = stub(lambda environ, body: ("200 OK", b"", 0))
    sp = make_pop(r, hook_config(server), env={})
    sp.prepare("call-n", "hooked", NUM, False, "")
    with caplog.at_level("WARNING"):
        sp.offered("call-n", ["a1"], 3)
        sp.webhooks.join(timeout=2)
    assert server.count == 0 and "no secret" in caplog.text


def test_webhook_pool_drops_instead_of_piling_up(r, stub):
    server = stub(lambda environ, body: ("200 OK", b"", 0.3))
    sp = make_pop(r, hook_config(server), env={"HOOK_SECRET": SECRET})
    sp.webhooks.pool = gevent.pool.Pool(2)
    sp.prepare("call-d", "hooked", NUM, False, "")
    sp.offered("call-d", ["a1", "a2", "a3", "a4"], 3)
    sp.webhooks.join(timeout=2)
    assert sp.webhooks.stats["dropped"] == 2 and sp.webhooks.stats["sent"] == 2


# --- config -----------------------------------------------------------------------------------


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_text(text, env={})
    return exc.value.errors


def test_pop_config_validation():
    cfg = load_text(BASE_CONFIG, env={})
    assert cfg.queues["support"].pop_fields is None
    assert "contact.name" in cfg.queues["support"].screen_pop_fields
    assert "contact.account_manager" not in cfg.queues["support"].screen_pop_fields
    assert cfg.queues["private"].pop_fields == ("contacts", "contact.name")
    assert cfg.queues["uk"].region == "GB"
    assert errors_of('[queues.q]\npop_fields = ["number", "phone", "contact.a b"]\n') == [
        'queues.q.pop_fields: unknown field "phone"; use number, caller_name, queue_name,'
        " contacts, new_contact, ivr, waited, history, contact.FIELD or contact.*",
        'queues.q.pop_fields: unknown field "contact.a b"; use number, caller_name, queue_name,'
        " contacts, new_contact, ivr, waited, history, contact.FIELD or contact.*",
    ]
    assert errors_of('[queues.q]\npop_fields = "number"\n') == [
        'queues.q.pop_fields: must be an array of strings, got "number"'
    ]
    assert errors_of('[queues.q]\nwebhook_url = "https://x.example/h"\n') == [
        "queues.q.webhook_url: needs webhook_secret_env or webhook_secret_file"
        " (webhooks are always signed)"
    ]
    assert errors_of('[queues.q]\nwebhook_url = "x.example"\nwebhook_timeout = 60\n') == [
        "queues.q.webhook_url: must be an http:// or https:// URL without spaces",
        "queues.q.webhook_timeout: must be a number of seconds from 0.05 to 30, got 60",
    ]
    assert errors_of('[queues.q]\nregion = "XX"\nwebhook_secret_env = "1A"\n') == [
        "queues.q.region: must be an ISO 3166 alpha-2 region phonenumbers supports"
        ' (e.g. DE, US, GB), got "XX"',
        'queues.q.webhook_secret_env: must be an environment variable name, got "1A"',
    ]


# --- fsacd pop watch --------------------------------------------------------------------------


@pytest.fixture
def run(redis_url, tmp_path):
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text(BASE_CONFIG)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, ["--config", str(cfg), *args], env={"REDIS_URL": redis_url})

    return invoke


def test_pop_watch_prints_pops(r, sp, run):
    sp.prepare("call-1", "support", NUM, False, "", {"menu": "2"})
    sp.offered("call-1", ["1001"], 7)
    sp.answered("call-1", "1001")
    res = run("pop", "watch", "1001", "--from-start", "--count", "2", "--timeout", "5")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.count("call call-1") == 2 and "offer" in out and "answered" in out
    assert "Anna Schmidt" in out and E164 in out and "ivr menu" in out
    res = run("pop", "watch", "1001", "--from-start", "--count", "1", "--json")
    line = json.loads(res.stdout.strip())
    assert line["stage"] == "offer" and line["id"]


def test_pop_watch_live_from_now(r, sp, run):
    sp.prepare("old", "support", NUM, False, "")
    sp.offered("old", ["1001"], 1)  # before the watch starts: not shown

    def later():
        gevent.sleep(0.3)
        sp.prepare("new", "support", NUM, False, "")
        sp.offered("new", ["1001"], 1)

    g = gevent.spawn(later)
    t0 = time.monotonic()
    res = run("pop", "watch", "1001", "--count", "1", "--timeout", "5", "--json")
    g.join()
    assert res.exit_code == 0
    assert json.loads(res.stdout)["call"] == "new"
    assert time.monotonic() - t0 < 3


def test_pop_watch_timeout_and_bad_agent(run):
    res = run("agent", "add", "1001", "--contact", "user/1001@pbx.example", "--queue", "support")
    assert res.exit_code == 0, res.output
    t0 = time.monotonic()
    res = run("pop", "watch", "1001", "--timeout", "0.3")
    assert res.exit_code == 0 and time.monotonic() - t0 < 2
    res = run("pop", "watch", "bad id")
    assert res.exit_code == 1 and "bad agent id" in res.stderr
    # an agent that neither exists nor has pops: refused at once, not watched forever
    res = run("pop", "watch", "nosuch", "--timeout", "5")
    assert res.exit_code == 1 and res.stderr.strip() == (
        "Error: unknown agent 'nosuch' (fsacd agent list shows them)"
    )
    for bad in ("nan", "inf", "-inf"):
        res = run("pop", "watch", "1001", "--timeout", bad)
        assert res.exit_code in (1, 2) and isinstance(res.exception, SystemExit), res.exception
        assert "Traceback" not in res.output and "--timeout" in res.stderr


def test_pop_watch_shows_hostile_text_literally(r, run):
    sp = make_pop(r)
    sp.contacts.put(
        {"id": "c1", "name": "[bold red]x[/] \x1b[31mred\x1b[0m", "numbers": [{"number": E164}]}
    )
    sp.prepare("call-h", "support", NUM, False, "")
    sp.offered("call-h", ["1001"], 1)
    res = run("pop", "watch", "1001", "--from-start", "--count", "1")
    assert "[bold red]x[/]" in res.stdout and "\x1b" not in res.stdout


# --- anonymous queues (agent_sees = "anonymous") ----------------------------------------------

ANON = '[queues.hotline]\nagent_sees = "anonymous"\n'


def test_anonymous_queue_is_hidden_even_if_the_caller_is_not(r):
    sp = make_pop(r, ANON, env={"FSACD_HISTORY_SALT": "a-salt-of-16-chars-or-more"})
    sp.contacts.put({"id": "c1", "name": "Anna", "numbers": [{"number": E164}]})
    sp.prepare("call-a", "hotline", NUM, False, "ANNA")
    sip = sp.offered("call-a", ["a1"], 1)["a1"]
    (pop,) = stream(r, "a1")
    assert pop["match"] == "hidden" and "number" not in pop and "contacts" not in pop
    assert "sip_h_X-Fsacd-Number" not in sip
    sp.finished("call-a", "a1", "answered")
    assert sp.history.previous(NUM, False) == []
    assert len(sp.history.previous(NUM, True)) == 1


def test_overflow_into_an_anonymous_queue_hides_the_caller(r):
    sp = make_pop(r, ANON, env={"FSACD_HISTORY_SALT": "a-salt-of-16-chars-or-more"})
    sp.contacts.put({"id": "c1", "name": "Anna", "numbers": [{"number": E164}]})
    sp.prepare("call-o", "support", NUM, False, "ANNA", {"menu": "9"})
    r.hset(Keys().call("call-o"), "queue", "hotline")
    sip = sp.offered("call-o", ["a1"], 1)["a1"]
    (pop,) = stream(r, "a1")
    assert (pop["queue"], pop["match"], pop["hidden"]) == ("hotline", "hidden", True)
    assert "number" not in pop and "contacts" not in pop and "caller_name" not in pop
    assert pop["history"] == [] and pop["ivr"] == {"menu": "9"}
    assert "number_for_history" not in pop
    assert set(sip) == {
        "sip_h_X-Fsacd-Call",
        "sip_h_X-Fsacd-Queue",
        "sip_h_X-Fsacd-Match",
        "sip_h_X-Fsacd-Waited",
    }
    sp.answered("call-o", "a1")
    assert "number" not in stream(r, "a1")[-1]
    sp.finished("call-o", "a1", "answered")
    assert sp.history.previous(NUM, False) == []
    assert sp.history.previous(NUM, True)[0]["queue"] == "hotline"
    assert "4930" not in json.dumps([stream(r, "a1")])
