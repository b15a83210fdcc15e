"""fsacd.pop.history: capped per-number lists; hidden numbers only as a salted hash."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from fsacd.config import HistoryConfig, load_text
from fsacd.core import numbers
from fsacd.pop.history import History, hashed_ref
from fsacd.pop.screen import ScreenPop
from fsacd.state.keys import Keys

SALT = "0123456789abcdef-test-salt"
RAW = "030 1234567"
E164 = "+49301234567"
NUM = numbers.normalise(RAW, "DE")


def hist(r, **kw) -> History:
    cfg = HistoryConfig(**{"salt_env": "SALT", **kw})
    return History(r, Keys(), cfg, env={"SALT": SALT})


def dump_db(r) -> list[str]:
    """Every key and every value (of every type) in the database, as text."""
    out = []
    for key in r.scan_iter("*"):
        out.append(key)
        kind = r.type(key)
        if kind == "string":
            out.append(r.get(key))
        elif kind == "hash":
            for k, v in r.hgetall(key).items():
                out += [k, v]
        elif kind == "list":
            out += r.lrange(key, 0, -1)
        elif kind == "set":
            out += list(r.smembers(key))
        elif kind == "zset":
            out += [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _id, fields in r.xrange(key):
                for k, v in fields.items():
                    out += [k, v]
    return out


def number_forms(e164: str) -> list[str]:
    digits = e164.lstrip("+")
    return [e164, digits, "0" + digits[2:], digits[2:]]


def test_record_and_previous(r):
    h = hist(r, max_entries=3)
    for i in range(5):
        assert h.record(f"call-{i}", NUM, False, "support", f"a{i}", "answered", 1_700_000_000 + i)
    prev = h.previous(NUM, False, limit=10)
    assert [p["call"] for p in prev] == ["call-4", "call-3", "call-2"]  # newest first, capped
    assert prev[0] == {
        "ts": 1_700_000_004,
        "call": "call-4",
        "queue": "support",
        "agent": "a4",
        "outcome": "answered",
        "date": "2023-11-14T22:13:24Z",
    }
    assert len(h.previous(NUM, False, limit=2)) == 2
    assert r.keys("*") == [f"fsacd:history:{E164}"]
    assert 0 < r.ttl(f"fsacd:history:{E164}") <= 90 * 86400
    # any format of the same number finds the same history
    assert len(h.previous(numbers.normalise("+49 (0)30 123 45 67", "DE"), False)) == 3


def test_abandoned_call_without_agent(r):
    h = hist(r)
    h.record("c1", NUM, False, "support", None, "abandoned", 1_700_000_000)
    assert h.previous(NUM, False)[0]["agent"] == ""


def test_hidden_number_is_keyed_by_salted_hash(r):
    h = hist(r)
    assert h.record("call-h", NUM, True, "helpline", "a1", "answered", 1_700_000_000)
    expected = "h:" + hmac.new(SALT.encode(), E164.encode(), hashlib.sha256).hexdigest()
    assert h.ref(NUM, True) == expected == hashed_ref(SALT, E164)
    assert r.keys("*") == [f"fsacd:history:{expected}"]
    everything = " ".join(dump_db(r))
    for form in number_forms(E164):
        assert form not in everything
    assert hashlib.sha256(E164.encode()).hexdigest() not in everything  # not a plain hash
    (entry,) = h.previous(NUM, True)
    assert "call" not in entry and entry["queue"] == "helpline"
    # hidden and ordinary history of one number are kept apart
    assert h.previous(NUM, False) == []
    h.record("call-o", NUM, False, "support", "a2", "answered")
    assert [e["queue"] for e in h.previous(NUM, True)] == ["helpline"]
    assert [e["queue"] for e in h.previous(NUM, False)] == ["support"]


def test_a_different_salt_gives_a_different_key(r):
    assert hist(r).ref(NUM, True) != History(r, Keys(), salt="another-salt-of-16+").ref(NUM, True)


def test_hidden_without_salt_is_not_recorded(r, caplog):
    h = History(r, Keys(), HistoryConfig(salt_env="NOPE"), env={})
    with caplog.at_level("WARNING"):
        assert h.record("c", NUM, True, "q", "a", "answered") is False
    assert r.keys("*") == []
    assert "no history salt" in caplog.text
    short = History(r, Keys(), HistoryConfig(salt_env="S"), env={"S": "short"})
    assert short.ref(NUM, True) is None


def test_salt_from_file(r, tmp_path):
    path = tmp_path / "salt"
    path.write_text(SALT + "\n")
    h = History(r, Keys(), HistoryConfig(salt_env=None, salt_file=str(path)), env={})
    assert h.ref(NUM, True) == hashed_ref(SALT, E164)


def test_no_history_for_withheld_invalid_or_when_off(r):
    h = hist(r)
    assert h.record("c", numbers.normalise("anonymous", "DE"), False, "q", "a", "x") is False
    assert h.record("c", numbers.normalise("12345", "DE"), False, "q", "a", "x") is False
    assert hist(r, max_entries=0).record("c", NUM, False, "q", "a", "x") is False
    assert r.keys("*") == []
    assert h.previous(numbers.normalise("", "DE"), False) == []


def test_ttl_zero_keeps_forever(r):
    h = hist(r, ttl=0)
    h.record("c", NUM, False, "q", "a", "answered")
    assert r.ttl(f"fsacd:history:{E164}") == -1


def test_history_config():
    cfg = load_text("[queues.q]\n", env={})
    assert cfg.history == HistoryConfig()
    assert cfg.history.salt_env == "FSACD_HISTORY_SALT"
    cfg = load_text('[history]\nmax_entries = 5\nsalt_file = "/run/salt"\n[queues.q]\n', env={})
    assert (cfg.history.max_entries, cfg.history.salt_env, cfg.history.salt_file) == (
        5,
        None,
        "/run/salt",
    )


# --- a whole hidden call through the screen pop: no number anywhere in Redis -------------------

CONFIG = """
[queues.helpline]
[queues.support]
"""


@pytest.mark.parametrize("how", ["anonymous-queue", "withheld"])
def test_hidden_call_leaves_no_number_in_redis(r, how):
    cfg = load_text(CONFIG, env={})
    sp = ScreenPop(r, Keys(), cfg, env={"FSACD_HISTORY_SALT": SALT})
    sp.contacts.put({"id": "c1", "name": "Known", "numbers": [{"number": "+491719876543"}]})
    caller = NUM if how == "anonymous-queue" else numbers.normalise("anonymous", "DE")
    for i in range(2):
        call = f"call-{i}"
        sp.prepare(call, "helpline", caller, how == "anonymous-queue", "Caller Name", {"pin": "1"})
        sip = sp.offered(call, ["a1", "a2"], 3.0)
        assert all("Number" not in k for v in sip.values() for k in v)
        sp.answered(call, "a1")
        sp.finished(call, "a1", "answered")
    everything = " ".join(dump_db(r))
    for form in number_forms(E164):
        assert form not in everything
    assert "Caller Name" not in everything
    pops = [p for p in dump_db(r) if p.startswith("{") and '"stage":"offer"' in p]
    assert pops and all('"hidden":true' in p and '"match":"hidden"' in p for p in pops)
    if how == "anonymous-queue":
        # the second call's pop showed the first call, by the hashed history
        assert sp.history.previous(NUM, True)[0]["agent"] == "a1"
        assert len(sp.history.previous(NUM, True)) == 2
        assert '"history":[{' in " ".join(pops)
    else:
        assert not any(k.startswith("fsacd:history:") for k in r.keys("*"))
