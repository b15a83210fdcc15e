"""fsacd.pop.crm against a local HTTP server: answers, cache, strict timeout, no lookup when
hidden."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from fsacd.config import ConfigError, CrmConfig, load_text
from fsacd.core import numbers
from fsacd.pop.crm import Crm, HttpFailure, http_request, parse_answer
from fsacd.pop.screen import ScreenPop
from fsacd.state.keys import Keys

E164 = "+49301234567"


class HttpStub:
    """A tiny HTTP server on 127.0.0.1 that counts requests and answers with ``handler``.

    ``handler(environ, body) -> (status, body bytes or list of chunks, delay before answering
    [, extra headers])``.
    Each chunk in a list may be a float: a pause (to trickle an answer slowly).
    """

    def __init__(self, handler: Callable) -> None:
        self.handler = handler
        self.requests: list[dict] = []
        self.server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)
        self.server.start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    @property
    def count(self) -> int:
        return len(self.requests)

    def _app(self, environ, start_response):
        body = environ["wsgi.input"].read()
        self.requests.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ.get("PATH_INFO", ""),
                "raw_uri": environ.get("RAW_URI") or environ.get("REQUEST_URI", ""),
                "query": environ.get("QUERY_STRING", ""),
                "headers": {
                    k[5:].replace("_", "-").title(): v
                    for k, v in environ.items()
                    if k.startswith("HTTP_")
                },
                "content_type": environ.get("CONTENT_TYPE", ""),
                "body": body,
            }
        )
        status, payload, delay, *extra = self.handler(environ, body)
        if delay:
            gevent.sleep(delay)
        start_response(status, [("Content-Type", "application/json"), *(extra[0] if extra else [])])
        if isinstance(payload, bytes):
            return [payload]

        def chunks():
            for part in payload:
                if isinstance(part, float):
                    gevent.sleep(part)
                else:
                    yield part

        return chunks()

    def stop(self) -> None:
        self.server.stop(timeout=0.5)


def json_answer(data, status="200 OK", delay=0.0):
    return lambda environ, body: (status, json.dumps(data).encode(), delay)


@pytest.fixture
def stub():
    servers: list[HttpStub] = []

    def make(handler):
        s = HttpStub(handler)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def crm_for(r, server, **kw) -> Crm:
    # a test about answers gets a timeout a loaded machine cannot miss (the timeout tests
    # pass their own short one)
    kw.setdefault("timeout", 5.0)
    cfg = CrmConfig(url=server.base + "/lookup?e164={e164}&d={digits}", **kw)
    return Crm(r, Keys(), cfg, region="DE", env={"CRM_TOKEN": "s3cret"})


ANSWER = {
    "contacts": [
        {
            "id": "crm-1",
            "Name": "Eve Example",
            "Company": "CRM Co",
            "Customer Status": "existing",
            "phone": "+49 30 1234567",
            "open_tickets": [17, 23],
            "vip": True,
            "address": {"city": "Berlin"},
        }
    ]
}


def test_found_fills_the_same_fields(r, stub):
    server = stub(json_answer(ANSWER))
    crm = crm_for(r, server, token_env="CRM_TOKEN")
    found = crm.lookup(E164)
    assert found == [
        {
            "id": "crm-1",
            "name": "Eve Example",
            "company": "CRM Co",
            "status": "existing",
            "tickets": "17, 23",
            "vip": "yes",
            "address": '{"city": "Berlin"}',
            "numbers": [{"label": "phone", "number": E164}],
            "source": "crm",
        }
    ]
    req = server.requests[0]
    assert "e164=%2B49301234567" in req["query"] and "d=49301234567" in req["query"]
    assert req["headers"]["Authorization"] == "Bearer s3cret"
    assert req["headers"]["Accept"] == "application/json"


@pytest.mark.parametrize(
    "answer,expected",
    [
        (None, []),
        ([], []),
        ({}, []),
        ({"contacts": []}, []),
        ([{"name": "A"}, {"name": "B"}], ["A", "B"]),
        ({"name": "Solo", "mobile": "0171 2345678"}, ["Solo"]),
        ({"name": "S", "numbers": "+49 30 1234567; 0171 2345678"}, ["S"]),
        (
            {"name": "L", "numbers": ["030 1234567", {"label": "Mobil", "number": "+4917123"}]},
            ["L"],
        ),
    ],
)
def test_answer_shapes(answer, expected):
    assert [c["name"] for c in parse_answer(answer, "DE")] == expected


def test_answer_numbers():
    (c,) = parse_answer({"name": "S", "numbers": "+49 30 1234567; 0171 2345678"}, "DE")
    assert [n["number"] for n in c["numbers"]] == ["+49301234567", "+491712345678"]
    (c,) = parse_answer(
        {"numbers": ["030 1234567", {"label": "Mobil Nr", "number": "0171 2345678"}, "bad"]},
        "DE",
    )
    assert c["numbers"] == [
        {"label": "phone", "number": "+49301234567"},
        {"label": "mobil_nr", "number": "+491712345678"},
    ]


def test_bad_answer_shape_raises():
    with pytest.raises(ValueError):
        parse_answer("nope", "DE")
    with pytest.raises(ValueError):
        parse_answer([1, 2], "DE")


def test_cache_answers_and_misses_not_errors(r, stub):
    status = {"code": "200 OK"}

    def handler(environ, body):
        if "%2B4930" in environ["QUERY_STRING"]:
            return status["code"], json.dumps(ANSWER).encode(), 0
        return "404 Not Found", b"", 0

    server = stub(handler)
    crm = crm_for(r, server, cache_ttl=300, miss_ttl=60)
    assert crm.lookup(E164)[0]["name"] == "Eve Example"
    assert crm.lookup(E164)[0]["name"] == "Eve Example"
    assert server.count == 1
    ttl = r.pttl(Keys().crm_cache(E164))
    assert 290_000 < ttl <= 300_000
    # a miss is cached with miss_ttl
    other = "+442079460958"
    assert crm.lookup(other) == [] and crm.lookup(other) == []
    assert server.count == 2
    assert 50_000 < r.pttl(Keys().crm_cache(other)) <= 60_000
    # errors are not cached
    r.delete(Keys().crm_cache(E164))
    status["code"] = "500 Internal Server Error"
    assert crm.lookup(E164) == [] and crm.lookup(E164) == []
    assert server.count == 4
    assert r.exists(Keys().crm_cache(E164)) == 0
    assert crm.stats["errors"] == 2 and crm.stats["cached"] == 2


def test_no_cache_when_ttl_zero(r, stub):
    server = stub(json_answer(ANSWER))
    crm = crm_for(r, server, cache_ttl=0)
    crm.lookup(E164)
    crm.lookup(E164)
    assert server.count == 2
    assert r.keys("*") == []


def test_timeout_is_respected(r, stub):
    server = stub(json_answer(ANSWER, delay=2.0))
    crm = crm_for(r, server, timeout=0.2)
    t0 = time.monotonic()
    assert crm.lookup(E164) == []
    assert time.monotonic() - t0 < 0.5
    assert crm.stats["errors"] == 1 and server.count == 1
    assert r.exists(Keys().crm_cache(E164)) == 0


def test_timeout_covers_a_trickling_answer(r, stub):
    """Each part comes quickly, the whole takes too long: still cut at the timeout."""
    parts = [b'{"name": "slow"', 0.1, b", ", 0.1, b'"x": "1"', 0.1, b", ", 0.1, b'"y": "2"}']
    server = stub(lambda environ, body: ("200 OK", parts, 0))
    t0 = time.monotonic()
    with pytest.raises(HttpFailure, match="timed out"):
        http_request(server.base + "/x", timeout=0.25)
    assert time.monotonic() - t0 < 0.45


def test_call_never_waits_beyond_timeout_in_prepare(r, stub):
    server = stub(json_answer(ANSWER, delay=3.0))
    cfg = load_text(
        f'[crm]\nurl = "{server.base}/?n={{e164}}"\ntimeout = 0.3\n[queues.q]\n', env={}
    )
    sp = ScreenPop(r, Keys(), cfg, env={})
    t0 = time.monotonic()
    sp.prepare("call-1", "q", numbers.normalise("030 1234567", "DE"), False, "")
    assert time.monotonic() - t0 < 0.6
    assert sp.get_prepared("call-1")["match"] == "none"
    assert server.count == 1


def test_redirect_not_followed(r, stub):
    target = stub(json_answer(ANSWER))

    def redirect(environ, body):
        return "302 Found", b"", 0, [("Location", target.base + "/stolen")]

    server = stub(redirect)
    crm = crm_for(r, server)
    assert crm.lookup(E164) == []
    assert target.count == 0 and crm.stats["errors"] == 1


def test_unreachable_crm(r):
    crm = Crm(r, Keys(), CrmConfig(url="http://127.0.0.1:9/{e164}", timeout=0.3), region="DE")
    t0 = time.monotonic()
    assert crm.lookup(E164) == []
    assert time.monotonic() - t0 < 0.6


def test_bad_json_not_cached(r, stub):
    server = stub(lambda environ, body: ("200 OK", b"{not json", 0))
    crm = crm_for(r, server)
    assert crm.lookup(E164) == []
    assert r.exists(Keys().crm_cache(E164)) == 0


def test_logs_carry_no_number_or_url(r, stub, caplog):
    server = stub(json_answer(ANSWER, status="503 Service Unavailable"))
    crm = crm_for(r, server)
    with caplog.at_level("DEBUG"):
        crm.lookup(E164)
    assert "CRM lookup failed: HTTP 503" in caplog.text
    assert "4930" not in caplog.text and "lookup?" not in caplog.text


# --- hidden numbers never reach the CRM -------------------------------------------------------


def _screen_pop(r, server, extra=""):
    text = f'[crm]\nurl = "{server.base}/?n={{e164}}"\n[queues.q]\n{extra}'
    return ScreenPop(r, Keys(), load_text(text, env={}), env={})


def test_hidden_number_is_never_looked_up(r, stub):
    server = stub(json_answer(ANSWER))
    sp = _screen_pop(r, server)
    num = numbers.normalise("030 1234567", "DE")
    sp.contacts.put({"id": "c1", "name": "Known", "numbers": [{"number": E164}]})
    sp.prepare("call-h", "q", num, True, "Caller Name")
    sp.prepare("call-w", "q", numbers.normalise("anonymous", "DE"), False, "")
    assert server.count == 0
    for call in ("call-h", "call-w"):
        p = sp.get_prepared(call)
        assert p["match"] == "hidden" and p["hidden"] is True
        assert "number" not in p and "contacts" not in p and "caller_name" not in p
    # the same number, not hidden: store first (found, so no CRM call) ...
    sp.prepare("call-s", "q", num, False, "")
    assert sp.get_prepared("call-s")["contacts"][0]["id"] == "c1"
    assert server.count == 0
    # ... and the CRM only when the store has nothing
    sp.prepare("call-c", "q", numbers.normalise("+44 20 7946 0958", "DE"), False, "")
    assert server.count == 1
    assert sp.get_prepared("call-c")["contacts"][0]["source"] == "crm"


def test_invalid_number_is_not_looked_up(r, stub):
    server = stub(json_answer(ANSWER))
    sp = _screen_pop(r, server)
    sp.prepare("call-x", "q", numbers.normalise("12345", "DE"), False, "")
    assert server.count == 0
    assert sp.get_prepared("call-x")["match"] == "no-number"


# --- config -----------------------------------------------------------------------------------


def crm_errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_text(text + "\n[queues.q]\n", env={})
    return exc.value.errors


def test_crm_config():
    cfg = load_text('[crm]\nurl = "https://crm.example/c?n={e164}"\n[queues.q]\n', env={})
    assert cfg.crm == CrmConfig(url="https://crm.example/c?n={e164}")
    assert (cfg.crm.timeout, cfg.crm.cache_ttl, cfg.crm.miss_ttl) == (0.5, 300, 60)
    assert load_text("[queues.q]\n", env={}).crm is None
    assert crm_errors('[crm]\nurl = "https://crm.example/c"') == [
        "crm.url: must contain {e164} or {digits} where the caller number goes"
    ]
    assert crm_errors('[crm]\nurl = "https://x/{e164}/{name}"') == [
        "crm.url: may only contain the placeholders {e164} and {digits}"
    ]
    assert crm_errors('[crm]\nurl = "ftp://x/{e164}"') == [
        "crm.url: must be an http:// or https:// URL without spaces"
    ]
    assert crm_errors("[crm]\ntimeout = 1") == [
        'crm.url: is required in [crm], e.g. "https://crm.example/api/caller?e164={e164}"'
    ]
    errs = crm_errors(
        '[crm]\nurl = "http://x/{e164}"\ntimeout = 30\ntoken_env = "A"\ntoken_file = "/f"\nx = 1'
    )
    assert errs == [
        "crm.token_file: give either token_env or token_file, not both",
        "crm.timeout: must be a number of seconds from 0.05 to 10, got 30",
        "crm.x: unknown key",
    ]
