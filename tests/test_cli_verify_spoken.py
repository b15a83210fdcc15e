"""``fsacd numbers verify --via call`` says when FreeSWITCH did not speak the code (the
stand-in over its real inbound socket: say without its module or digit files plays
nothing, as FreeSWITCH does)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.standin import FakeFreeSwitch
from fsacd.standin import PhoneBehaviour as P

NUMBER = "+4922129191999"
CONFIG = """
[redis]
url = "{redis_url}"

[freeswitch]
inbound = "127.0.0.1:{port}"

[numbers]
network_number = "+4930901820"
gateway = "gw1"
{extra}

[queues.support]
"""


@pytest.fixture
def fs():
    switch = FakeFreeSwitch(inbound=("127.0.0.1", 0))
    switch.start()
    switch.phones.register(f"sofia/gateway/gw1/{NUMBER}", P.answers(after=0.1, talk=30))
    yield switch
    switch.stop()


def verify(fs, redis_url, tmp_path, extra=""):
    path = tmp_path / "fsacd.toml"
    path.write_text(CONFIG.format(redis_url=redis_url, port=fs.inbound_address[1], extra=extra))
    runner = CliRunner()
    env = {"FSACD_ESL_PASSWORD": "ClueCon"}
    res = runner.invoke(main, ["--config", str(path), "numbers", "add", NUMBER], env=env)
    assert res.exit_code == 0, res.output
    return runner.invoke(
        main, ["--config", str(path), "numbers", "verify", NUMBER, "--via", "call", "--json"],
        env=env,
    )  # fmt: skip


def test_a_spoken_code_is_reported_as_sent(fs, redis_url, tmp_path):
    res = verify(fs, redis_url, tmp_path)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] and data["spoken"] is True


@pytest.mark.parametrize("missing", ["module", "digits"])
def test_say_that_played_nothing_fails_and_voids_the_code(fs, redis_url, tmp_path, r, missing):
    if missing == "module":
        fs.modules.discard("mod_say_en")
    else:
        fs.media_durations.update({f"digits/{d}.wav": None for d in "0123456789"})
    res = verify(fs, redis_url, tmp_path)
    assert res.exit_code == 1
    assert "was answered but FreeSWITCH did not speak the code: say played no sound" in res.output
    h = r.hgetall(f"fsacd:number:{NUMBER}")
    assert "code_hash" not in h  # void, may be asked for again at once
    failed = [f for _, f in r.xrange("fsacd:events") if f["type"] == "number-code-failed"]
    assert failed and "say played no sound" in failed[-1]["reason"]


def test_speak_without_its_tts_engine_fails(fs, redis_url, tmp_path):
    res = verify(fs, redis_url, tmp_path, 'call_app = "speak"')
    assert res.exit_code == 1 and "speak ended after" in res.output
    fs.modules.add("mod_flite")
    res = verify(fs, redis_url, tmp_path, 'call_app = "speak"')
    assert res.exit_code == 0 and json.loads(res.stdout)["spoken"] is True
