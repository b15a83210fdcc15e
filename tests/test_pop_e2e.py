"""Contacts imported from a CSV pop on the ringing agent's phone, matched in any format."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd

CSV = """id,name,company,status,phone,mobile
c1,Erika Muster,Muster GmbH,existing,0221 29191999,
c2,John Smith,Acme Inc,new,+1 (212) 555-0100,
c3,Ann Other,Muster GmbH,existing,,0171-1234567
"""

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2

[queues.sales]
strategy = "ring-all"
"""


@pytest.fixture
def acd(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FSACD_HISTORY_SALT", "test-salt-0123456789")
    h = Acd(redis_url, queues=QUEUES)
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text(f'[redis]\nurl = "{redis_url}"\n[queues.support]\n[queues.sales]\n')
    csv = tmp_path / "contacts.csv"
    csv.write_text(CSV)
    res = CliRunner().invoke(
        main,
        ["--config", str(cfg), "contacts", "import", str(csv), "--json"],
        env={"REDIS_URL": redis_url},
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["imported"] == 3
    h.agent("1001", P.answers(after=0.5, talk=30), {"support": 1})
    yield h
    h.stop()


def ring(acd, number: str, **kw):
    call = acd.fs.place_call(destination="5000", caller_number=number, **kw)
    leg = call.wait_bridged(8)
    return call, leg


@pytest.mark.parametrize(
    "number,contact,name",
    [
        ("+4922129191999", "c1", "Erika Muster"),  # CSV had 0221 29191999
        ("004922129191999", "c1", "Erika Muster"),
        ("0221/2919-1999", "c1", "Erika Muster"),
        ("+12125550100", "c2", "John Smith"),  # CSV had +1 (212) 555-0100
        ("+491711234567", "c3", "Ann Other"),  # CSV had 0171-1234567
    ],
)
def test_known_caller_pops_the_contact_on_the_agent_leg(acd, number, contact, name):
    call, leg = ring(acd, number)
    try:
        assert leg.variables["sip_h_X-Fsacd-Contact"] == contact
        assert leg.variables["sip_h_X-Fsacd-Contact-Name"] == name
        pops = [
            json.loads(f["pop"]) if "pop" in f else f
            for _, f in acd.r.xrange(acd.store.keys.agent_pops("1001"))
        ]
        assert pops, "no pop in the agent's stream"
    finally:
        call.hangup()


def test_unknown_caller_pops_new_contact_with_the_number(acd):
    call, leg = ring(acd, "+4930901820")
    try:
        assert "sip_h_X-Fsacd-Contact" not in leg.variables
        assert leg.variables["sip_h_X-Fsacd-Number"] == "+4930901820"
        assert leg.variables["sip_h_X-Fsacd-Match"] == "none"
    finally:
        call.hangup()


def test_withheld_caller_pops_no_number(acd):
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    call.channel.profile.hide_number = True
    leg = call.wait_bridged(8)
    try:
        assert "sip_h_X-Fsacd-Number" not in leg.variables
        assert "sip_h_X-Fsacd-Contact" not in leg.variables
        raw = json.dumps([f for _, f in acd.r.xrange(acd.store.keys.agent_pops("1001"))])
        assert "4922129191999" not in raw
    finally:
        call.hangup()


def test_dialplan_region_reads_national_numbers_of_another_country(acd):
    # a UK trunk: the dialplan sets fsacd_region=GB; the caller's 020 number is London
    call = acd.fs.place_call(destination="5000", caller_number="020 7946 0018",
                             variables={"fsacd_region": "GB"})
    call.wait_bridged(8)
    assert acd.store.get_call(call.uuid)["number"] == "+442079460018"
    call.hangup()


def test_a_caller_cannot_forge_the_screen_pop(acd):
    """A SIP caller's X- headers become sip_h_X-* variables that FreeSWITCH copies onto the
    agent's leg; none of fsacd's namespace may come from the caller."""
    forged = {
        "sip_h_X-Fsacd-Contact": "c-4711",
        "sip_h_X-Fsacd-Contact-Name": "Anna Schmidt",
        "sip_h_x-fsacd-tier": "gold",
        "sip_h_X-Fsacd-Match-1": "found",
        "sip_h_X-Customer-Ref": "A-17",  # not fsacd's: the caller's own headers go through
    }
    call, leg = ring(acd, "+4930901820", variables=forged)
    try:
        v = leg.variables
        assert "sip_h_X-Fsacd-Contact" not in v
        assert "sip_h_X-Fsacd-Contact-Name" not in v
        assert "sip_h_x-fsacd-tier" not in v and "sip_h_X-Fsacd-Match-1" not in v
        assert v["sip_h_X-Fsacd-Match"] == "none"  # fsacd's own
        assert v["sip_h_X-Customer-Ref"] == "A-17"
        assert "c-4711" not in json.dumps(leg.display.sip_headers)
    finally:
        call.hangup()
