"""``fsacd listen`` on an agent's call, on the stand-in and (``FSACD_TEST_FREESWITCH``) on a
real FreeSWITCH: the switch must run ``eavesdrop`` on the call's channel."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from tests.switch import poll
from tests.test_switch_e2e import STEP, Acd, queues
from tests.test_switch_e2e import switch as switch  # noqa: F401 - the backend fixture

CLI_CONFIG = """
[redis]
url = "{redis_url}"

[freeswitch]
inbound = "{inbound}"
password_env = "FSACD_TEST_ESL_PASSWORD"

[supervisor]
contact = "{supervisor}"

{queues}
"""


def eavesdropping(switch, leg: str) -> str | None:
    """What ``leg`` runs eavesdrop on (``show channels as json``), or None."""
    data = json.loads(switch.api("show channels as json") or "{}")
    for row in data.get("rows", []):
        if row.get("uuid") == leg and row.get("application") == "eavesdrop":
            return row.get("application_data")
    return None


@pytest.mark.parametrize("mode", ["listen", "barge"])
def test_listen_runs_eavesdrop_on_the_agents_call(switch, redis_url, tmp_path, monkeypatch, mode):
    monkeypatch.setenv("FSACD_TEST_ESL_PASSWORD", switch.password)
    acd = Acd(switch, redis_url, queues())
    leg = None
    try:
        acd.agent("agent", "1001", {"support": 1})
        supervisor = switch.contact("agent", "sup1")
        call = switch.place_call(destination="5000")
        call.wait_bridged(STEP)
        acd.wait_state("1001", "in-call")
        path = tmp_path / "fsacd.toml"
        inbound = "{}:{}".format(*switch.inbound)
        path.write_text(
            CLI_CONFIG.format(
                redis_url=redis_url, inbound=inbound, supervisor=supervisor, queues=queues()
            )
        )
        res = CliRunner().invoke(
            main,
            ["--config", str(path), mode, "1001", "--json"],
            env={"FSACD_TEST_ESL_PASSWORD": switch.password},
        )
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        leg, call_id = out["leg"], out["call"]
        assert call_id == acd.agent_state("1001")["call"]
        poll(lambda: eavesdropping(switch, leg) == call_id, STEP, "eavesdrop on the call")
        whisper = switch.api(f"uuid_getvar {leg} eavesdrop_whisper_aleg").strip()
        assert whisper == ("true" if mode == "barge" else "false")
        assert call.is_up
    finally:
        if leg:
            switch.api(f"uuid_kill {leg}")
        acd.stop()


def test_transfer_sends_the_call_to_an_extension_and_it_leaves_fsacd(
    switch, redis_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("FSACD_TEST_ESL_PASSWORD", switch.password)
    if not switch.real:  # the test dialplan's agent-ID extension: answers, talks
        switch.fs.extensions["agent-moved1"] = [("answer", None), ("sleep", "600000")]
    acd = Acd(switch, redis_url, queues())
    try:
        acd.agent("agent", "1001", {"support": 1})
        call = switch.place_call(destination="5000")
        call.wait_bridged(STEP)
        call_id = acd.wait_state("1001", "in-call")["call"]
        path = tmp_path / "fsacd.toml"
        path.write_text(
            CLI_CONFIG.format(
                redis_url=redis_url,
                inbound="{}:{}".format(*switch.inbound),
                supervisor="user/none@x",
                queues=queues(),
            )
        )
        res = CliRunner().invoke(
            main,
            ["--config", str(path), "call", "transfer", call_id, "agent-moved1"],
            env={"FSACD_TEST_ESL_PASSWORD": switch.password},
        )
        assert res.exit_code == 0, res.output
        ended = acd.wait_call(call_id, "ended")
        assert ended["outcome"] in ("answered", "transferred")
        acd.wait_state("1001", "wrap-up", "idle")
        poll(
            lambda: "sleep" in switch.api(f"uuid_getvar {call_id} current_application"),
            STEP,
            "the caller runs the new extension",
        )
        assert call.is_up
    finally:
        acd.stop()
