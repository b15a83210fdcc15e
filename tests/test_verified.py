"""fsacd.verified.registry against a real Redis: registry, codes (expiry, attempts, hashing),
operator overrides, snapshots, and delivery by call (through a tiny fake inbound ESL server and
the real InboundClient) and by SMS (a command and a webhook)."""

import json
import logging
import re
import sys
import uuid as uuidlib
from dataclasses import replace

import gevent
import gevent.server
import pytest
from gevent.pywsgi import WSGIServer

from fsacd.config import NumbersConfig, load_text
from fsacd.esl.framing import FrameReader, encode_event_plain, encode_frame
from fsacd.esl.session import InboundClient
from fsacd.state.keys import Keys
from fsacd.verified import registry as vmod
from fsacd.verified.registry import (
    BlockEntry,
    DeliveryError,
    NumberEntry,
    NumberError,
    VerifiedNumbers,
    VerifiedSnapshot,
    require_e164,
    verify_call_command,
)

NUMBER = "+4922129191999"
NET = "+4930901820"
T0 = 1_800_000_000.0
SETTINGS = NumbersConfig(network_number=NET, pai_host="pbx.example", gateway="gw1")


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def reg(r, clock):
    return VerifiedNumbers(r, Keys("t:"), SETTINGS, clock=clock)


def events(r, prefix="t:"):
    return [f for _, f in r.xrange(f"{prefix}events")]


def fixed_code(monkeypatch, code="482917"):
    """Make the next codes ``code`` (the real ones are random)."""
    digits = iter(code * 100)
    monkeypatch.setattr(vmod.secrets, "choice", lambda seq: next(digits))
    return code


def dump(r):
    """Every string in the database: keys, hash fields/values, set members, stream entries."""
    out = []
    for key in r.scan_iter("*"):
        out.append(key)
        kind = r.type(key)
        if kind == "hash":
            for k, v in r.hgetall(key).items():
                out += [k, v]
        elif kind == "set":
            out += list(r.smembers(key))
        elif kind == "string":
            out.append(r.get(key))
        elif kind == "stream":
            for eid, fields in r.xrange(key):
                out.append(eid)
                for k, v in fields.items():
                    out += [k, v]
        elif kind == "list":
            out += r.lrange(key, 0, -1)
        elif kind == "zset":
            out += [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
    return out


# --- E.164 only -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,hint",
    [
        ("0221 29191999", "did you mean +4922129191999?"),
        ("+49 221 29191999", "did you mean +4922129191999?"),
        ("004922129191999", "did you mean +4922129191999?"),
        ("22129191999", ""),
        ("+4912", ""),
        ("abc", ""),
        ("", ""),
        ("+49221291919990000000", ""),
        ("+49221291\n91999", ""),
    ],
)
def test_add_refuses_anything_but_e164(reg, r, text, hint):
    with pytest.raises(NumberError) as exc:
        reg.add(text)
    msg = str(exc.value)
    assert "E.164" in msg and "e.g. +4922129191999" in msg
    assert hint in msg
    if text.strip() == NUMBER:
        pytest.fail("should have been accepted")
    assert r.dbsize() == 0


def test_require_e164_accepts_only_the_exact_form():
    assert require_e164(NUMBER) == NUMBER
    assert require_e164(" +4922129191999 ") == NUMBER


def test_add_update_list_remove(reg, r):
    entry, created = reg.add(NUMBER, queues=["sales"])
    assert created and entry.status == "pending" and entry.queues == ("sales",)
    assert entry.added_at == T0 and entry.state(T0) == "pending"
    entry, created = reg.add(NUMBER, queues=["support", "sales"], agent="alice")
    assert not created and entry.queues == ("sales", "support") and entry.agent == "alice"
    reg.add("+4930123456")
    assert [e.number for e in reg.list()] == [NUMBER, "+4930123456"]
    with pytest.raises(NumberError, match="bad queue"):
        reg.add(NUMBER, queues=["a b"])
    with pytest.raises(NumberError, match="bad agent"):
        reg.add(NUMBER, agent="x,y")
    reg.remove("+4930123456")
    assert [e.number for e in reg.list()] == [NUMBER]
    with pytest.raises(NumberError, match="not registered"):
        reg.remove("+4930123456")
    types = [e["type"] for e in events(r)]
    assert types == ["number-added", "number-updated", "number-added", "number-removed"]


# --- codes ------------------------------------------------------------------------------------


def test_code_is_stored_hashed_only(reg, r, monkeypatch):
    code = fixed_code(monkeypatch)
    reg.add(NUMBER)
    assert reg.issue_code(NUMBER, "call") == code
    h = r.hgetall(f"t:number:{NUMBER}")
    assert h["code_hash"] != code and len(h["code_hash"]) == 64 and len(h["code_salt"]) == 32
    assert h["code_attempts"] == "0" and float(h["code_expires_at"]) == T0 + 600
    assert not any(code in s for s in dump(r))
    entry = reg.confirm(NUMBER, code)
    assert entry.status == "verified" and entry.via == "call"
    assert not any(code in s for s in dump(r))
    assert "code_hash" not in r.hgetall(f"t:number:{NUMBER}")


def test_random_codes_differ_and_have_the_configured_length(r, clock):
    reg = VerifiedNumbers(
        r, Keys("t:"), replace(SETTINGS, code_digits=8, resend_after=0), clock=clock
    )
    reg.add(NUMBER)
    codes = {reg.issue_code(NUMBER, "sms") for _ in range(5)}
    assert len(codes) == 5 and all(len(c) == 8 and c.isdigit() for c in codes)


def test_code_expires(reg, clock, monkeypatch):
    code = fixed_code(monkeypatch)
    reg.add(NUMBER)
    reg.issue_code(NUMBER, "call")
    clock.t += 601
    with pytest.raises(NumberError, match="expired"):
        reg.confirm(NUMBER, code)
    with pytest.raises(NumberError, match="no code is pending"):
        reg.confirm(NUMBER, code)
    assert reg.get(NUMBER).status == "pending"


def test_attempts_are_limited(reg, r, monkeypatch):
    code = fixed_code(monkeypatch)
    reg.add(NUMBER)
    reg.issue_code(NUMBER, "call")
    for left in (4, 3, 2, 1):
        with pytest.raises(NumberError, match=rf"wrong code \({left} tr"):
            reg.confirm(NUMBER, "000000")
    with pytest.raises(NumberError, match="no tries left"):
        reg.confirm(NUMBER, "111111")
    with pytest.raises(NumberError, match="no code is pending"):
        reg.confirm(NUMBER, code)  # the right code is void now
    assert reg.get(NUMBER).status == "pending"
    failed = [e for e in events(r) if e["type"] == "number-code-failed"]
    assert [e.get("reason") for e in failed] == ["wrong code"] * 4 + ["too many attempts"]
    assert not any(code in s for s in dump(r))


def test_confirm_accepts_spaces_and_dashes_and_counts_garbage(reg, monkeypatch):
    code = fixed_code(monkeypatch)
    reg.add(NUMBER)
    reg.issue_code(NUMBER, "call")
    with pytest.raises(NumberError, match="wrong code"):
        reg.confirm(NUMBER, "x" * 5000)
    assert reg.confirm(NUMBER, f" {code[:3]}-{code[3:]} ").status == "verified"


def test_resend_is_rate_limited(reg, clock):
    reg.add(NUMBER)
    reg.issue_code(NUMBER, "call")
    clock.t += 30
    with pytest.raises(NumberError, match="wait 30s"):
        reg.issue_code(NUMBER, "call")
    clock.t += 31
    reg.issue_code(NUMBER, "call")


def test_issue_code_needs_a_registered_number(reg):
    with pytest.raises(NumberError, match="numbers add"):
        reg.issue_code(NUMBER, "call")
    with pytest.raises(NumberError, match="not registered"):
        reg.confirm(NUMBER, "123456")


def test_verification_expires(r, clock, monkeypatch):
    reg = VerifiedNumbers(r, Keys("t:"), replace(SETTINGS, valid_days=2), clock=clock)
    code = fixed_code(monkeypatch)
    reg.add(NUMBER, queues=["sales"])
    reg.issue_code(NUMBER, "sms")
    entry = reg.confirm(NUMBER, code)
    assert entry.expires_at == T0 + 2 * 86400
    snap = reg.snapshot()
    assert snap.check(NUMBER, queue="sales", now=T0 + 86400) == (True, "verified via sms")
    ok, why = snap.check(NUMBER, queue="sales", now=T0 + 3 * 86400)
    assert not ok and why == "verification expired 2027-01-17"
    assert entry.state(T0 + 3 * 86400) == "expired"


# --- operator overrides -----------------------------------------------------------------------


def test_mark_verified_block_needs_reason_and_is_logged_and_evented(reg, r, caplog):
    with pytest.raises(NumberError, match="reason is required"):
        reg.mark_verified("+4922129191", reason="  ", by="ops", block=True)
    with caplog.at_level(logging.WARNING, logger="fsacd.verified.registry"):
        block = reg.mark_verified(
            "+4922129191", reason="DDI block 000-999, contract 4711", by="ops", block=True
        )
    assert isinstance(block, BlockEntry) and block.expires_at == T0 + 365 * 86400
    assert "contract 4711" in caplog.text and "ops" in caplog.text
    ev = events(r)[-1]
    assert ev["type"] == "number-marked-verified" and ev["block"] == "+4922129191"
    assert ev["reason"] == "DDI block 000-999, contract 4711" and ev["by"] == "ops"
    snap = reg.snapshot()
    assert snap.check("+4922129191123") == (True, "in block +4922129191 verified by an operator")
    assert snap.check("+4922129192000")[0] is False
    reg.remove_block("+4922129191", by="ops")
    assert reg.snapshot().check("+4922129191123") == (False, "is not registered")
    with pytest.raises(NumberError):
        reg.remove_block("+4922129191")


@pytest.mark.parametrize(
    "prefix", ["+49221", "4922129191", "+0492212919", "+99912345678", "+49 221"]
)
def test_mark_verified_refuses_bad_blocks(reg, prefix):
    with pytest.raises(NumberError):
        reg.mark_verified(prefix, reason="r", by="ops", block=True)


def test_mark_verified_special_and_single_numbers(reg, r, clock):
    with pytest.raises(NumberError, match="E.164"):
        reg.mark_verified("+49115", reason="service number", by="ops")
    e = reg.mark_verified("+49115", reason="service number", by="ops", special=True, days=0)
    assert e.special and e.status == "verified" and e.expires_at == 0
    assert reg.snapshot().check("+49115", now=T0 + 10**9)[0]
    e = reg.mark_verified(NUMBER, reason="our main line", by="ops", queues=["sales"], days=10)
    assert (e.via, e.by, e.reason, e.queues) == ("operator", "ops", "our main line", ("sales",))
    assert e.expires_at == T0 + 10 * 86400
    with pytest.raises(NumberError, match="days"):
        reg.mark_verified(NUMBER, reason="r", by="ops", days=-1)
    with pytest.raises(NumberError, match="200 characters"):
        reg.mark_verified(NUMBER, reason="x" * 201, by="ops")


# --- snapshot ---------------------------------------------------------------------------------


def test_snapshot_is_cached_until_something_changes(reg, r):
    s1 = reg.snapshot()
    assert s1 is reg.snapshot() and s1.entries == {}
    reg.add(NUMBER)
    s2 = reg.snapshot()
    assert s2 is not s1 and NUMBER in s2.entries and s2 is reg.snapshot()
    reg.issue_code(NUMBER, "call")
    assert reg.snapshot() is not s2


def entry(number, **kw):
    return NumberEntry(number=number, **{"status": "verified", "via": "call", **kw})


@pytest.mark.parametrize(
    "e,kw,expect",
    [
        (entry(NUMBER), {}, (True, "verified via call")),
        (entry(NUMBER, status="pending"), {}, (False, "is not verified")),
        (entry(NUMBER, expires_at=T0 - 1), {}, (False, "verification expired 2027-01-15")),
        (entry(NUMBER, expires_at=T0 + 1), {}, (True, "verified via call")),
        (entry(NUMBER, queues=("a", "b")), {"queue": "b"}, (True, "verified via call")),
        (entry(NUMBER, queues=("a",)), {"queue": "b"}, (False, "is not assigned to queue b")),
        (entry(NUMBER, queues=("a",)), {}, (True, "verified via call")),
        (entry(NUMBER, agent="al"), {"agent": "al"}, (True, "verified via call")),
        (entry(NUMBER, agent="al"), {"agent": "bo"}, (False, "belongs to agent al")),
        (entry(NUMBER, agent="al"), {}, (True, "verified via call")),
        (None, {}, (False, "is not registered")),
    ],
)
def test_snapshot_check(e, kw, expect):
    snap = VerifiedSnapshot(entries={NUMBER: e} if e else {})
    assert snap.check(NUMBER, now=T0, **kw) == expect


def test_snapshot_blocks_and_agent_number():
    blocks = (
        BlockEntry("+4922129", "wide", "ops", 0, T0 - 1),  # expired
        BlockEntry("+49221291919", "narrow", "ops", 0, 0),
    )
    snap = VerifiedSnapshot(
        entries={
            NUMBER: entry(NUMBER, status="pending"),
            "+4930123456": entry("+4930123456", agent="al", queues=("sales",)),
            "+4930123457": entry("+4930123457", agent="al", status="pending"),
        },
        blocks=blocks,
    )
    assert snap.check(NUMBER, now=T0) == (True, "in block +49221291919 verified by an operator")
    assert snap.check("+4922129000000", now=T0) == (False, "block +4922129 verification expired")
    assert snap.agent_number("al", now=T0) == "+4930123456"
    assert snap.agent_number("al", queue="sales", now=T0) == "+4930123456"
    assert snap.agent_number("al", queue="support", now=T0) is None
    assert snap.agent_number("bo", now=T0) is None


# --- delivery by call -------------------------------------------------------------------------


class FakeInbound:
    """FreeSWITCH's inbound event socket, just enough: auth, ``event``, ``api``, ``bgapi``.

    ``originate`` answers ``+OK <uuid>`` (or ``self.originate_reply``); every command line is
    recorded in ``commands``.
    """

    def __init__(self, password="ClueCon"):
        self.password = password
        self.commands: list[str] = []
        self.originate_reply = None
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port

    def stop(self):
        self.server.stop(timeout=1)

    def _handle(self, sock, _addr):
        reader = FrameReader(commands=True)
        sock.sendall(b"Content-Type: auth/request\n\n")
        authed = False
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for frame in reader.feed(data):
                cmd = frame.command or ""
                self.commands.append(cmd)
                if cmd.startswith("auth "):
                    authed = cmd == f"auth {self.password}"
                    sock.sendall(_reply("+OK accepted" if authed else "-ERR invalid"))
                    if not authed:
                        return
                elif not authed:
                    sock.sendall(_reply("-ERR command not found"))
                elif cmd.startswith("event "):
                    sock.sendall(_reply("+OK event listener enabled plain"))
                elif cmd.startswith("api "):
                    body = self._run(cmd[4:])
                    sock.sendall(
                        encode_frame([("Content-Type", "api/response")], body, length_first=False)
                    )
                elif cmd.startswith("bgapi "):
                    job = frame.headers.get("Job-UUID") or str(uuidlib.uuid4())
                    sock.sendall(
                        encode_frame(
                            [
                                ("Content-Type", "command/reply"),
                                ("Reply-Text", f"+OK Job-UUID: {job}"),
                                ("Job-UUID", job),
                            ]
                        )
                    )
                    body = self._run(cmd[6:])
                    sock.sendall(
                        encode_event_plain(
                            [
                                ("Event-Name", "BACKGROUND_JOB"),
                                ("Job-UUID", job),
                                ("Job-Command", cmd[6:].split(" ", 1)[0]),
                            ],
                            body,
                        )
                    )
                else:
                    sock.sendall(_reply("-ERR no_such_command Command not found!"))

    def _run(self, cmd):
        if cmd.startswith("originate "):
            return self.originate_reply or f"+OK {uuidlib.uuid4()}\n"
        return "-ERR no_such_command Command not found!\n"

    def originates(self):
        return [c for c in self.commands if " originate " in f" {c}"]


def _reply(text):
    return encode_frame([("Content-Type", "command/reply"), ("Reply-Text", text)])


@pytest.fixture
def fake_fs():
    fs = FakeInbound()
    yield fs
    fs.stop()


@pytest.fixture
def esl(fake_fs):
    client = InboundClient("127.0.0.1", fake_fs.port, "ClueCon", timeout=2, command_timeout=2)
    client.connect()
    yield client
    client.close()


def spoken_code(command: str) -> str:
    m = re.search(r"say:en number iterated (\d+)", command)
    assert m, command
    return m.group(1)


def test_verify_via_call_end_to_end(reg, r, fake_fs, esl):
    reg.add(NUMBER, queues=["sales"])
    result = reg.verify_via_call(NUMBER, esl)
    assert result["via"] == "call" and result["uuid"] and result["code_expires_at"] == T0 + 600
    [cmd] = fake_fs.originates()
    assert cmd.startswith("bgapi originate {")
    code = spoken_code(cmd)
    assert len(code) == 6
    assert cmd.count(code) == 3  # spoken three times
    assert f"}}sofia/gateway/gw1/{NUMBER} '" in cmd and cmd.endswith("' inline")
    assert f"origination_caller_id_number={NET}" in cmd and "sip_cid_type=pid" in cmd
    assert not any(code in s for s in dump(r))
    ev = [e for e in events(r) if e["type"] == "number-code-sent"]
    assert ev and ev[0]["via"] == "call" and code not in json.dumps(ev)
    assert reg.confirm(NUMBER, code).status == "verified"
    assert reg.snapshot().check(NUMBER, queue="sales")[0]


def test_verify_via_call_not_answered(reg, r, fake_fs, esl):
    reg.add(NUMBER)
    fake_fs.originate_reply = "-ERR NO_ANSWER\n"
    with pytest.raises(DeliveryError, match="NO_ANSWER"):
        reg.verify_via_call(NUMBER, esl)
    h = r.hgetall(f"t:number:{NUMBER}")
    assert "code_hash" not in h and "code_sent_at" not in h  # void, and may be retried at once
    assert events(r)[-1]["type"] == "number-code-failed"
    fake_fs.originate_reply = None
    reg.verify_via_call(NUMBER, esl)
    assert len(fake_fs.originates()) == 2


def test_verify_via_call_refused_before_dialling(r, clock, fake_fs, esl):
    reg = VerifiedNumbers(r, Keys("t:"), replace(SETTINGS, gateway=None), clock=clock)
    reg.add(NUMBER)
    with pytest.raises(NumberError, match="numbers.gateway"):
        reg.verify_via_call(NUMBER, esl)
    with pytest.raises(NumberError, match="not registered"):
        reg.verify_via_call("+4930123456", esl)
    assert fake_fs.originates() == []
    assert "code_hash" not in r.hgetall(f"t:number:{NUMBER}")


@pytest.mark.parametrize("app", ["say", "speak"])
def test_verify_call_command_shape(app):
    s = replace(SETTINGS, call_app=app, call_timeout=30)
    cmd = verify_call_command(NUMBER, "123456", s)
    argv = _originate_argv(cmd)
    assert argv[0] == "originate" and argv[3] == "inline" and len(argv) == 4
    assert argv[1].endswith(f"}}sofia/gateway/gw1/{NUMBER}")
    assert "originate_timeout=30" in argv[1] and "fsacd_verify=true" in argv[1]
    apps = argv[2].split(",")
    assert apps[0] == "sleep:1000" and apps[-1] == "hangup"
    if app == "say":
        assert apps.count("say:en number iterated 123456") == 3
    else:
        assert apps[1].startswith("speak:flite|kal|Your verification code is 1 2 3 4 5 6.")
    with pytest.raises(ValueError):
        verify_call_command(NUMBER, "12;34", s)
    with pytest.raises(NumberError):
        verify_call_command("0221 29191999", "123456", s)
    no_net = verify_call_command(NUMBER, "1", replace(s, network_number=None))
    assert "origination_caller_id_number" not in no_net


def _originate_argv(cmd):
    parts, cur, inside = [], [], False
    for ch in cmd:
        if ch == "'":
            inside = not inside
        elif ch == " " and not inside:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.replace("'", "") for p in parts if p]


# --- delivery by SMS --------------------------------------------------------------------------

SMS_SCRIPT = """
import json, sys
data = json.load(sys.stdin)
with open(sys.argv[1], "w") as f:
    json.dump({"argv": sys.argv[2:], "stdin": data}, f)
if len(sys.argv) > 3 and sys.argv[3] == "fail":
    sys.stderr.write("gateway said no to " + data["code"] + "\\n")
    sys.exit(3)
"""


def test_verify_via_sms_command(r, clock, tmp_path, monkeypatch):
    script = tmp_path / "send_sms.py"
    script.write_text(SMS_SCRIPT)
    out = tmp_path / "out.json"
    cmd = (sys.executable, str(script), str(out), "{number}")
    s = replace(SETTINGS, sms_command=cmd, sms_text="Code: {code}")
    reg = VerifiedNumbers(r, Keys("t:"), s, clock=clock)
    reg.add(NUMBER)
    code = fixed_code(monkeypatch)
    result = reg.verify_via_sms(NUMBER)
    assert result["via"] == "sms"
    got = json.loads(out.read_text())
    assert got["argv"] == [NUMBER]  # the code is not on the command line unless asked for
    assert got["stdin"] == {"number": NUMBER, "code": code, "text": f"Code: {code}"}
    assert not any(code in s for s in dump(r))
    assert reg.confirm(NUMBER, code).via == "sms"


def test_verify_via_sms_command_failure_is_reported_without_the_code(r, clock, tmp_path):
    script = tmp_path / "send_sms.py"
    script.write_text(SMS_SCRIPT)
    cmd = (sys.executable, str(script), str(tmp_path / "o.json"), "{number}", "fail")
    reg = VerifiedNumbers(r, Keys("t:"), replace(SETTINGS, sms_command=cmd), clock=clock)
    reg.add(NUMBER)
    with pytest.raises(DeliveryError) as exc:
        reg.verify_via_sms(NUMBER)
    code = json.loads((tmp_path / "o.json").read_text())["stdin"]["code"]
    assert "exited with 3" in str(exc.value) and "******" in str(exc.value)
    assert code not in str(exc.value)
    assert "code_hash" not in r.hgetall(f"t:number:{NUMBER}")
    missing = replace(SETTINGS, sms_command=("/nonexistent/sms",))
    reg2 = VerifiedNumbers(r, Keys("t:"), missing, clock=clock)
    with pytest.raises(DeliveryError, match="sms_command failed"):
        reg2.verify_via_sms(NUMBER)


def test_verify_via_sms_needs_a_sender(reg):
    reg.add(NUMBER)
    with pytest.raises(NumberError, match="no SMS sender"):
        reg.verify_via_sms(NUMBER)


@pytest.fixture
def webhook():
    got = []
    status = {"code": "200 OK"}

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        got.append((environ.get("HTTP_AUTHORIZATION"), json.loads(body)))
        start_response(status["code"], [("Content-Type", "text/plain")])
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}/sms", got, status
    server.stop(timeout=1)


def test_verify_via_sms_webhook(r, clock, webhook, monkeypatch):
    url, got, status = webhook
    s = replace(SETTINGS, sms_webhook=url, sms_token_env="SMS_TOKEN")
    reg = VerifiedNumbers(r, Keys("t:"), s, clock=clock)
    reg.add(NUMBER)
    code = fixed_code(monkeypatch)
    reg.verify_via_sms(NUMBER, env={"SMS_TOKEN": "tok123"})
    assert got == [
        (
            "Bearer tok123",
            {"number": NUMBER, "code": code, "text": f"Your verification code is {code}"},
        )
    ]
    assert reg.confirm(NUMBER, code).status == "verified"
    status["code"] = "500 Internal Server Error"
    reg.add("+4930123456")
    with pytest.raises(DeliveryError, match="HTTP 500"):
        reg.verify_via_sms("+4930123456", env={})


@pytest.fixture
def http_server():
    """``make(status, headers)``: a local HTTP server answering every request with ``status``;
    returns ``(url, requests)``."""
    servers = []

    def make(status="200 OK", headers=()):
        got = []

        def app(environ, start_response):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            got.append((environ.get("HTTP_AUTHORIZATION"), body))
            start_response(status, [("Content-Type", "text/plain"), *headers])
            return [b"ok"]

        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/sms", got

    yield make
    for server in servers:
        server.stop(timeout=1)


@pytest.mark.parametrize("status", ["302 Found", "307 Temporary Redirect"])
def test_sms_webhook_does_not_follow_a_redirect(r, clock, http_server, monkeypatch, status):
    """A redirect would carry the bearer token (and with 307 the code) to another host: it is
    a failed delivery, the other host sees nothing, the code is void."""
    elsewhere, stolen = http_server()
    url, got = http_server(status, [("Location", elsewhere)])
    s = replace(SETTINGS, sms_webhook=url, sms_token_env="SMS_TOKEN")
    reg = VerifiedNumbers(r, Keys("t:"), s, clock=clock)
    reg.add(NUMBER)
    fixed_code(monkeypatch)
    with pytest.raises(DeliveryError, match=f"HTTP {status[:3]}"):
        reg.verify_via_sms(NUMBER, env={"SMS_TOKEN": "tok123"})
    assert len(got) == 1 and stolen == []
    assert not reg.get(NUMBER).code_pending
    assert events(r)[-1]["type"] == "number-code-failed"


def test_sms_webhook_ignores_proxy_settings_in_the_environment(r, clock, http_server, monkeypatch):
    """HTTP(S)_PROXY / ALL_PROXY in fsacd's environment never see the code or the token: the
    request goes to the webhook itself."""
    proxied = []

    def proxy(sock, _addr):
        proxied.append(sock.recv(4096))
        sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        sock.close()

    proxy_server = gevent.server.StreamServer(("127.0.0.1", 0), proxy)
    proxy_server.start()
    try:
        proxy_url = f"http://127.0.0.1:{proxy_server.server_port}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        from fsacd import webclient

        monkeypatch.setattr(webclient, "_client", None)  # made anew, with that environment
        url, got = http_server()
        s = replace(SETTINGS, sms_webhook=url, sms_token_env="SMS_TOKEN")
        reg = VerifiedNumbers(r, Keys("t:"), s, clock=clock)
        reg.add(NUMBER)
        code = fixed_code(monkeypatch)
        reg.verify_via_sms(NUMBER, env={"SMS_TOKEN": "tok123"})
        assert [(auth, json.loads(body)["code"]) for auth, body in got] == [("Bearer tok123", code)]
        assert proxied == []
    finally:
        proxy_server.stop()


# --- config and salt --------------------------------------------------------------------------


def test_numbers_config_section():
    cfg = load_text(
        """
        [numbers]
        network_number = "+4930901820"
        pai_host = "pbx.example"
        gateway = "gw1"
        code_ttl = 300
        code_attempts = 3
        sms_command = ["/usr/local/bin/send-sms", "{number}"]

        [queues.support]
        """,
        env={},
    )
    n = cfg.numbers
    assert (n.code_ttl, n.code_attempts, n.sms_command) == (
        300.0,
        3,
        ("/usr/local/bin/send-sms", "{number}"),
    )
    assert cfg.queues["support"].gateway == "gw1"


def test_number_salt():
    cfg = load_text("[queues.a]\n", env={})
    assert vmod.number_salt(cfg, env={}) is None
    assert vmod.number_salt(cfg, env={"FSACD_HISTORY_SALT": "short"}) is None
    salt = vmod.number_salt(cfg, env={"FSACD_HISTORY_SALT": "a-long-enough-salt"})
    assert salt == b"a-long-enough-salt"


@pytest.mark.parametrize(
    "body,error",
    [
        ('pai_host = "pbx example"', "numbers.pai_host: must be a host name"),
        ('network_number = "030 901820"', "numbers.network_number: must be a valid E.164"),
        ('gateway = "a/b"', "numbers.gateway: may only use letters"),
        ('sms_command = "send-sms {number}"', "numbers.sms_command: must be a non-empty array"),
        ("sms_command = []", "numbers.sms_command: must be a non-empty array"),
        (
            'sms_command = ["x"]\nsms_webhook = "https://sms.example/send"',
            "numbers.sms_webhook: give either sms_command or sms_webhook, not both",
        ),
        ('sms_webhook = "ftp://x"', "numbers.sms_webhook: must be an http:// or https:// URL"),
        ('sms_text = "hello"', "numbers.sms_text: must contain {code}"),
        ("code_attempts = 0", "numbers.code_attempts: must be a whole number from 1 to 20"),
        ("code_digits = 3", "numbers.code_digits: must be a whole number from 4 to 12"),
        ("code_ttl = 5", "numbers.code_ttl: must be a number of seconds from 30"),
        ("valid_days = -1", "numbers.valid_days: must be a whole number of days from 0 to 3650"),
        ('call_app = "sing"', "numbers.call_app: must be one of say, speak"),
        ('say_language = "e n"', "numbers.say_language: must be a language code"),
        ('tts_voice = "flite"', "numbers.tts_voice: must be ENGINE|VOICE"),
        ('sms_token_env = "A"\nsms_token_file = "/x"', "numbers.sms_token_file: give either"),
        ("salt = 1", "numbers.salt: unknown key"),
    ],
)
def test_numbers_config_errors_name_the_key(body, error):
    from fsacd.config import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_text(f"[numbers]\n{body}\n\n[queues.q]\n", env={})
    assert any(error in line for line in exc.value.errors), exc.value.errors
