"""``fsacd numbers ...`` against a real Redis and a fake FreeSWITCH inbound socket."""

import json
import socket

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from tests.test_verified import FakeInbound, spoken_code

NUMBER = "+4922129191999"

CONFIG = """
[freeswitch]
inbound = "127.0.0.1:{port}"

[numbers]
network_number = "+4930901820"
pai_host = "pbx.example"
gateway = "gw1"

[queues.support]
number = "+4930123456"

[queues.sales]
customer_sees = "pool"
pool_fixed = "+4922129191999"
"""


@pytest.fixture
def fake_fs():
    fs = FakeInbound()
    yield fs
    fs.stop()


@pytest.fixture
def run(redis_url, tmp_path, fake_fs):
    path = tmp_path / "fsacd.toml"
    path.write_text(CONFIG.format(port=fake_fs.port))
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(
            main,
            ["--config", str(path), "numbers", *args],
            env={"REDIS_URL": redis_url, "FSACD_ESL_PASSWORD": "ClueCon", **(env or {})},
        )

    return invoke


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails(result, text, code=1):
    assert result.exit_code == code, result.output
    assert text in result.output, result.output
    return result


def as_json(result):
    return json.loads(ok(result).stdout)


def test_add_list_and_e164_only(run):
    res = ok(run("add", NUMBER, "--queue", "sales"))
    assert f"{NUMBER} added for sales (pending)" in res.stdout
    assert f"fsacd numbers verify {NUMBER} --via call|sms" in res.stdout
    data = as_json(run("add", NUMBER, "--queue", "support", "--json"))
    assert data["created"] is False and data["number"]["queues"] == ["sales", "support"]
    fails(run("add", "0221 29191999"), "e.g. +4922129191999; did you mean +4922129191999?")
    fails(run("add", "+49 221 29191999"), "E.164")
    fails(run("add", NUMBER, "--queue", "nope"), "unknown queue 'nope'")
    listed = as_json(run("list", "--json"))
    assert [n["number"] for n in listed["numbers"]] == [NUMBER]
    assert listed["numbers"][0]["state"] == "pending" and listed["blocks"] == []
    assert "code_hash" not in json.dumps(listed)
    assert NUMBER in ok(run("list")).stdout


def test_verify_by_call_and_confirm(run, fake_fs):
    ok(run("add", NUMBER, "--queue", "sales"))
    res = ok(run("verify", NUMBER, "--via", "call"))
    assert "call answered: code sent to" in res.stdout
    assert f"fsacd numbers confirm {NUMBER} CODE" in res.stdout
    assert fake_fs.commands[0] == "auth ClueCon"
    [cmd] = fake_fs.originates()
    code = spoken_code(cmd)
    assert code not in res.stdout
    wrong = "000000" if code != "000000" else "111111"
    fails(run("confirm", NUMBER, wrong), "wrong code (4 tries left)")
    data = as_json(run("confirm", NUMBER, code, "--json"))
    assert data["number"]["state"] == "verified" and data["number"]["via"] == "call"
    assert "verified (call)" in ok(run("list")).stdout
    # too soon for another code
    fails(run("verify", NUMBER, "--via", "call"), "before asking again")


def test_verify_json_and_not_answered(run, fake_fs):
    ok(run("add", NUMBER))
    fake_fs.originate_reply = "-ERR NO_ANSWER\n"
    fails(run("verify", NUMBER, "--via", "call"), "the verification call failed: -ERR NO_ANSWER")
    fake_fs.originate_reply = None
    data = as_json(run("verify", NUMBER, "--via", "call", "--json"))
    assert data["ok"] and data["via"] == "call" and data["attempts"] == 5 and data["uuid"]


def test_verify_refusals(run, fake_fs, redis_url):
    fails(run("verify", NUMBER, "--via", "call"), "is not registered")
    fails(run("verify", "0221 29191999", "--via", "call"), "E.164")
    assert fake_fs.commands == []  # refused before FreeSWITCH was asked anything
    ok(run("add", NUMBER))
    fails(run("verify", NUMBER, "--via", "sms"), "no SMS sender configured")
    fails(run("verify", NUMBER, "--via", "fax"), "Invalid value for '--via'", code=2)
    fails(run("verify", NUMBER, "--via", "call", env={"FSACD_ESL_PASSWORD": "x"}), "FreeSWITCH")
    fails(run("confirm", NUMBER, "123456"), "no code is pending")


def test_verify_when_freeswitch_is_down(redis_url, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    path = tmp_path / "fsacd.toml"
    path.write_text(CONFIG.format(port=port))
    runner = CliRunner()
    env = {"REDIS_URL": redis_url, "FSACD_ESL_PASSWORD": "ClueCon"}
    ok(runner.invoke(main, ["--config", str(path), "numbers", "add", NUMBER], env=env))
    res = runner.invoke(
        main, ["--config", str(path), "numbers", "verify", NUMBER, "--via", "call"], env=env
    )
    fails(res, "FreeSWITCH: ")
    assert "cannot connect" in res.output


def test_mark_verified_block_and_special(run):
    fails(run("mark-verified", "+4922129191", "--block"), "Missing option '--reason'", code=2)
    res = ok(run("mark-verified", "+4922129191", "--block", "--reason", "DDI block", "--by", "ops"))
    assert "block +4922129191… marked verified until" in res.stdout and "by ops" in res.stdout
    fails(run("mark-verified", "+4922", "--block", "--reason", "x"), "at least 6 digits")
    fails(
        run("mark-verified", "+4922129191", "--block", "--reason", "x", "--queue", "sales"),
        "--block takes no",
    )
    data = as_json(
        run("mark-verified", "+49115", "--special", "--reason", "service", "--days", "0", "--json")
    )
    assert data["number"]["special"] is True and data["number"]["expires_at"] == 0
    fails(run("mark-verified", "+49115", "--reason", "service"), "E.164")
    listed = as_json(run("list", "--json"))
    assert [b["prefix"] for b in listed["blocks"]] == ["+4922129191"]
    assert listed["blocks"][0]["reason"] == "DDI block" and listed["blocks"][0]["by"] == "ops"
    text = ok(run("list")).stdout
    assert "+49115 (special)" in text and "DDI block" in text
    ok(run("remove", "+4922129191", "--block", "--yes"))
    res = run("remove", "+49115")  # asks first: no answer, kept
    assert res.exit_code == 1 and "remove number +49115" in res.stdout
    ok(run("remove", "+49115", "--yes"))
    fails(run("remove", "+49115"), "is not registered")
    data = as_json(run("list", "--json"))
    assert data == {"numbers": [], "blocks": []}
    assert "no numbers" in ok(run("list")).stdout


def test_events_record_operator_reason(run, r):
    ok(run("mark-verified", NUMBER, "--reason", "main line, contract 4711", "--by", "ops"))
    [ev] = [f for _, f in r.xrange("fsacd:events") if f["type"] == "number-marked-verified"]
    assert ev["number"] == NUMBER and ev["reason"] == "main line, contract 4711"
    assert ev["by"] == "ops"
