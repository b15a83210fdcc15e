"""``fsacd listen|whisper|barge AGENT``: the supervisor's phone rings and runs eavesdrop on
the agent's call (stand-in over real sockets, real Redis, a running controller)."""

from __future__ import annotations

import pytest

from fsacd.cli.supervise import originate_command
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import wait_for
from tests.floor_harness import Floor

SUP = "user/sup1@pbx.example"


@pytest.fixture
def floor(redis_url, tmp_path):
    f = Floor(redis_url, tmp_path)
    f.acd.agent("1001", P.answers(after=0.1, talk=60), {"support": 1})
    yield f
    f.stop()


def talking(floor):
    call = floor.acd.fs.place_call(destination="5000")
    call.wait_bridged(8)
    wait_for(lambda: floor.acd.store.get_agent("1001")["state"] == "in-call", what="in call")
    return call


@pytest.mark.parametrize(
    "mode, mux_read, mux_write",
    [("listen", False, False), ("whisper", True, False), ("barge", True, True)],
)
def test_supervisor_joins_the_agents_call_in_each_mode(floor, mode, mux_read, mux_write):
    acd = floor.acd
    acd.fs.phones.register(SUP, P.answers(after=0.1, talk=60))
    call = talking(floor)
    out = floor.json(mode, "1001")
    assert (out["mode"], out["call"], out["from"]) == (mode, call.uuid, SUP)
    leg = acd.fs.leg(SUP)
    ed = wait_for(lambda: leg.channel.eavesdrop, what="eavesdrop running")
    assert ed["target"] == call.uuid
    assert (ed["mux_read"], ed["mux_write"]) == (mux_read, mux_write)
    assert ed["bridge_read"] and ed["bridge_write"] and ed["dtmf"]
    assert leg.channel.uuid == out["leg"]
    assert leg.variables["eavesdrop_enable_dtmf"] == "true"
    ev = acd.events("supervisor-joined")[0]
    assert (ev["agent"], ev["call"], ev["mode"]) == ("1001", call.uuid, mode)
    # the command returned; the supervisor stays on the call until hanging up
    assert call.is_up and leg.channel.eavesdrop is not None
    leg.hangup()
    wait_for(lambda: leg.channel.eavesdrop is None, what="eavesdrop ended")
    assert call.is_up
    call.hangup()


def test_dtmf_switches_between_listen_whisper_and_barge(floor):
    acd = floor.acd
    acd.fs.phones.register(SUP, P.answers(after=0.1, talk=60))
    call = talking(floor)
    floor.ok("listen", "1001")
    leg = acd.fs.leg(SUP)
    wait_for(lambda: leg.channel.eavesdrop, what="eavesdrop running")
    for digit, want in (
        ("1", (True, False)),
        ("3", (True, True)),
        ("2", (False, True)),
        ("0", (False, False)),
    ):
        leg.channel.queue_dtmf(digit)
        wait_for(
            lambda want=want: (
                (leg.channel.eavesdrop["mux_read"], leg.channel.eavesdrop["mux_write"]) == want
            ),
            what=f"mode after {digit}",
        )
    leg.channel.queue_dtmf("*")  # leaves eavesdrop
    wait_for(lambda: leg.channel.eavesdrop is None, what="eavesdrop left")
    assert call.is_up
    call.hangup()


def test_refusals_are_one_line_and_ring_nobody(floor):
    acd = floor.acd
    res = floor.cli("listen", "1001")
    assert res.exit_code == 1 and "agent '1001' is not in a call (state idle)" in res.output
    res = floor.cli("listen", "nosuch")
    assert res.exit_code == 1 and "unknown agent 'nosuch'" in res.output
    call = talking(floor)
    res = floor.cli("barge", "1001", "--from", "user/9@x,user/8@x")
    assert res.exit_code == 1 and "--from contains characters not allowed" in res.output
    res = floor.cli("barge", "1001", "--from", "${system(reboot)}")
    assert res.exit_code == 1 and "the functions a contact may use" in res.output
    assert acd.fs.leg(SUP) is None
    acd.fs.phones.register(SUP, P.busy())
    res = floor.cli("listen", "1001")
    assert res.exit_code == 1 and "was not connected: -ERR USER_BUSY" in res.output
    assert call.is_up
    call.hangup()


def test_the_originate_is_built_from_checked_values_only():
    cmd = originate_command("whisper", SUP, "abc-123", "def-456", "1001", 20)
    assert cmd.startswith("originate {origination_uuid=def-456,originate_timeout=20,")
    assert "eavesdrop_whisper_aleg=true,eavesdrop_whisper_bleg=false" in cmd
    assert cmd.endswith("}user/sup1@pbx.example &eavesdrop(abc-123)")
    with pytest.raises(ValueError):
        originate_command("listen", SUP, "abc 123) &system(x", "d", "1001", 20)
