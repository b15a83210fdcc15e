"""fsacd.core.callerid: every inbound and outbound policy case, table-driven, and hostile values.

Dial strings are parsed back the way FreeSWITCH splits them (``{...}``/``[...]`` blocks on
unquoted ``,``, then ``=``; the ``originate`` API on unquoted spaces) and their shape checked.
"""

import pytest

from fsacd.config import QueueConfig, load_text
from fsacd.core import callerid, dialstring
from fsacd.core.callerid import (
    Presentation,
    agent_leg_vars,
    caller_is_hidden,
    caller_record_fields,
    customer_leg_vars,
    hash_number,
    network_caller,
    outbound_dial_string,
    transferring_agent,
)
from fsacd.core.numbers import normalise
from fsacd.verified.registry import BlockEntry, NumberEntry, VerifiedSnapshot

CALLER = "+4922129191999"
QUEUE_NUMBER = "+4930123456"
NET = "+4930901820"
HOST = "pbx.example"
POOL_A = "+4989123456"  # existing customers
POOL_B = "+4940123456"  # new customers
FIXED = "+4969123456"
CALLED = "+4922129191000"  # the number a customer originally called (callback)
AGENT_NUM = "+4930123457"
DEST_DE = "+4917612345678"
DEST_US = "+12015550123"
DEST_GB = "+442071838750"
NOW = 1_800_000_000.0
HOSTILE = [
    "a,b",
    "a|b",
    "a}b",
    "a]b",
    "a'b",
    "a b  c",
    "a\nb",
    "a\r\nb=c",
    "${system(rm -rf /)}",
    "x}sofia/gateway/evil/+1900,[origination_caller_id_number=1]",
    "^^:a:b",
    "a:_:b",
    '"quoted"',
    "\\,\\n",
    "<sip:evil@h>;x=y",
    "Erika\u202eMuster",
]
UNSAFE = set(",|{}[]'\"\n\r\\$^")


def queue(**kw) -> QueueConfig:
    base = dict(
        name="support",
        number=QUEUE_NUMBER,
        display_name="Support",
        gateway="gw1",
        network_number=NET,
    )
    base.update(kw)
    return QueueConfig(**base)


def data(number=CALLER, name="Erika Muster", **extra) -> dict[str, str]:
    d = {
        "Caller-Caller-ID-Number": number,
        "Caller-Caller-ID-Name": name,
        "Caller-Privacy-Hide-Name": "false",
        "Caller-Privacy-Hide-Number": "false",
        "Caller-ANI": number,
    }
    d.update(extra)
    return d


WITHHELD = data(**{"Caller-Privacy-Hide-Number": "true", "Caller-Privacy-Hide-Name": "true"})
CALLS = {
    "plain": data(),
    "national": data(number="0221 29191999"),
    "withheld": WITHHELD,  # Privacy: id with a P-Asserted-Identity: the number is known
    "withheld-anon": data(number="anonymous", name="Anonymous"),
    "withheld-anon-pai": data(
        number="anonymous", name="Anonymous", **{"variable_sip_P-Asserted-Identity": CALLER}
    ),
    "sip-privacy": data(variable_sip_Privacy="id"),
    "privacy-var": data(variable_privacy="number"),
    "extension": data(number="1001", name="Front desk"),
    "garbled": data(number="+49 221 2919-1999 ext. 42", name=""),
    "empty": data(number="", name=""),
    "blind": data(**{"variable_sip_h_Referred-By": "<sip:1001@pbx.example>"}),
    "blind-withheld": {**WITHHELD, "variable_sip_referred_by_user": "1001"},
    "attended": data(
        variable_transfer_source="1795316000:5e0c:att_xfer:1002@pbx.example/1005@pbx.example"
    ),
    "dialplan-transfer": data(variable_transfer_source="1795316000:5e0c:bl_xfer:5000/default/XML"),
    "dialplan-transfer-withheld": {
        **WITHHELD,
        "variable_transfer_source": "1795316000:5e0c:bl_xfer:5000/default/XML",
    },
    "fsacd-var": data(variable_fsacd_transfer_from="1003"),
    "hostile-referrer": data(**{"variable_sip_h_Referred-By": "<sip:10,01|x}@h>"}),
}
SHOW = "screen"
HIDE = "hide_name:hide_number"
ANON = ("anonymous", "Anonymous", HIDE)

# policy, allow_network_number, call -> (number var, name var, privacy), shown number, reason part
INBOUND = [
    ("caller", False, "plain", (CALLER, "Erika Muster", SHOW), CALLER, "the caller's number"),
    ("caller", False, "national", (CALLER, "Erika Muster", SHOW), CALLER, "the caller's number"),
    ("caller", False, "withheld", ANON, None, "withheld"),
    ("caller", True, "withheld", (CALLER, "Erika Muster", SHOW), CALLER, "allow_network_number"),
    ("caller", False, "withheld-anon", ANON, None, "withheld"),
    ("caller", True, "withheld-anon", ANON, None, "network gave none"),
    ("caller", False, "withheld-anon-pai", ANON, None, "withheld"),
    ("caller", True, "withheld-anon-pai", (CALLER, CALLER, SHOW), CALLER, "allow_network"),
    ("caller", False, "sip-privacy", ANON, None, "withheld"),
    ("caller", False, "privacy-var", ANON, None, "withheld"),
    ("caller", False, "extension", ("1001", "Front desk", SHOW), "1001", "as sent"),
    ("caller", False, "empty", ("unknown", "Unknown", SHOW), None, "no number"),
    ("caller", False, "garbled", ("unknown", "Unknown", SHOW), None, "cannot be read"),
    ("queue", False, "plain", (QUEUE_NUMBER, "Support", SHOW), QUEUE_NUMBER, "queue's own"),
    ("queue", False, "withheld", (QUEUE_NUMBER, "Support", SHOW), QUEUE_NUMBER, "queue's own"),
    ("queue", True, "withheld", (QUEUE_NUMBER, "Support", SHOW), QUEUE_NUMBER, "queue's own"),
    ("transferring-agent", False, "blind", ("1001", "Transfer from 1001", SHOW), "1001", "by 1001"),
    ("transferring-agent", False, "blind-withheld", ("1001", "Transfer from 1001", SHOW), "1001",
     ""),
    ("transferring-agent", False, "attended", ("1002", "Transfer from 1002", SHOW), "1002", ""),
    ("transferring-agent", False, "fsacd-var", ("1003", "Transfer from 1003", SHOW), "1003", ""),
    ("transferring-agent", False, "dialplan-transfer", (CALLER, "Erika Muster", SHOW), CALLER,
     "not a transfer: the caller's number"),
    ("transferring-agent", False, "dialplan-transfer-withheld", ANON, None,
     "not a transfer: the caller withheld"),
    ("transferring-agent", True, "dialplan-transfer-withheld", (CALLER, "Erika Muster", SHOW),
     CALLER, "allow_network_number"),
    ("transferring-agent", False, "plain", (CALLER, "Erika Muster", SHOW), CALLER,
     "not a transfer"),
    ("transferring-agent", False, "hostile-referrer", (CALLER, "Erika Muster", SHOW), CALLER,
     "not a transfer"),
    ("anonymous", False, "plain", ANON, None, "anonymous queue"),
    ("anonymous", True, "plain", ANON, None, "anonymous queue"),
    ("anonymous", True, "withheld", ANON, None, "anonymous queue"),
]  # fmt: skip


@pytest.mark.parametrize(
    "policy,allow,call,expect,shown,why", INBOUND, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in INBOUND]
)
def test_agent_leg_policy(policy, allow, call, expect, shown, why):
    q = queue(agent_sees=policy, allow_network_number=allow)
    call_data = CALLS[call]
    caller = network_caller(call_data, "DE")
    leg, pres = agent_leg_vars(None, call_data, caller, q)
    number, name, privacy = expect
    assert leg["origination_caller_id_number"] == number
    assert leg["origination_caller_id_name"] == name
    assert leg["origination_privacy"] == privacy
    hidden = privacy == HIDE
    assert ("origination_ani" in leg) == hidden  # the agent leg carries no caller ANI either
    assert pres == Presentation(shown, name, hidden, pres.reason)
    assert why in pres.reason
    if hidden:  # nothing on the agent leg reveals the number
        assert not any(CALLER[3:] in v for v in leg.values())
    _check_agent_leg(leg)
    # the policy argument wins over the queue's setting
    assert agent_leg_vars(policy, call_data, caller, queue(allow_network_number=allow)) == (
        leg,
        pres,
    )


# policy, allow, call -> caller_is_hidden
HIDDEN = [
    ("caller", False, "plain", False),
    ("caller", False, "withheld", True),
    ("caller", True, "withheld", False),
    ("caller", False, "withheld-anon", True),
    ("caller", False, "sip-privacy", True),
    ("caller", False, "privacy-var", True),
    ("queue", False, "withheld", True),
    ("queue", False, "plain", False),
    ("transferring-agent", False, "blind-withheld", True),
    ("transferring-agent", False, "blind", False),
    ("anonymous", False, "plain", True),
    ("anonymous", True, "plain", True),
]


@pytest.mark.parametrize("policy,allow,call,hidden", HIDDEN)
def test_caller_is_hidden(policy, allow, call, hidden):
    q = queue(agent_sees=policy, allow_network_number=allow)
    assert caller_is_hidden(CALLS[call], q) is hidden


@pytest.mark.parametrize("policy,allow,call,hidden", HIDDEN)
def test_record_fields_keep_no_plain_number_when_hidden(policy, allow, call, hidden):
    q = queue(agent_sees=policy, allow_network_number=allow)
    call_data = CALLS[call]
    caller = network_caller(call_data, "DE")
    fields = caller_record_fields(call_data, caller, q, b"0123456789abcdef")
    expect_hash = hash_number(CALLER, b"0123456789abcdef") if caller.e164 else ""
    assert fields["number_hash"] == expect_hash
    if hidden:
        assert fields == {
            "number": "",
            "number_raw": "",
            "number_status": "hidden",
            "name": "",
            "number_hash": fields["number_hash"],
        }
        assert not any("29191999" in v or "Erika" in v for v in fields.values())
    else:
        assert fields["number"] == CALLER and fields["number_status"] == "valid"
    assert caller_record_fields(call_data, caller, q, None)["number_hash"] == ""


def test_hash_number():
    h = hash_number(CALLER, "salt-salt-salt-salt")
    assert h == hash_number(CALLER, b"salt-salt-salt-salt") and len(h) == 64
    assert h != hash_number(CALLER, "another-salt-value") != hash_number("+4930123456", "x")
    assert CALLER not in h and "29191999" not in h
    with pytest.raises(ValueError):
        hash_number(CALLER, "")


def test_hidden_name_flag_without_number_privacy():
    call_data = data(**{"Caller-Privacy-Hide-Name": "true"})
    leg, pres = agent_leg_vars("caller", call_data, network_caller(call_data, "DE"), queue())
    assert (leg["origination_caller_id_number"], leg["origination_caller_id_name"]) == (
        CALLER,
        CALLER,
    )
    assert caller_record_fields(call_data, normalise(CALLER, "DE"), queue(), None)["name"] == ""


@pytest.mark.parametrize(
    "value,who",
    [
        ("<sip:1001@pbx.example>", "1001"),
        ('"Alice" <sip:+4930123457@pbx.example;transport=tcp>', "+4930123457"),
        ("sip:1004@10.0.0.1", "1004"),
        ("1005@pbx.example", "1005"),
        ("1006", "1006"),
        ("<sip:a,b@h>", None),
        ("<sip:${x}@h>", None),
        ("", None),
    ],
)
def test_transferring_agent_from_referred_by(value, who):
    assert transferring_agent({"variable_sip_h_Referred-By": value}) == who


def test_transferring_agent_sources():
    assert transferring_agent({}) is None
    src = "1:u:att_xfer:1002@pbx.example/1005@pbx.example"
    assert transferring_agent({"variable_transfer_source": src}) == "1002"
    assert transferring_agent({"variable_transfer_source": "1:u:bl_xfer:5000/default/XML"}) is None
    assert transferring_agent({"variable_transfer_source": "garbage"}) is None
    both = {"variable_transfer_source": src, "variable_sip_referred_by_user": "1009"}
    assert transferring_agent(both) == "1009"


def test_network_caller_sources():
    assert network_caller(data(), "DE").e164 == CALLER
    pai = {"Caller-Caller-ID-Number": "anonymous", "variable_sip_P-Asserted-Identity": CALLER}
    assert network_caller(pai, "DE").e164 == CALLER
    at = {"Caller-Caller-ID-Number": "anonymous", "variable_sip_P-Asserted-Identity": f"{CALLER}@h"}
    assert network_caller(at, "DE").e164 == CALLER
    assert network_caller({"Caller-Caller-ID-Number": "anonymous"}, "DE").status == "withheld"
    assert network_caller({}, "DE").status == "empty"
    assert network_caller({"Caller-ANI": "0221 29191999"}, "DE").e164 == CALLER


def test_unknown_policy_refused():
    with pytest.raises(ValueError, match="agent_sees"):
        agent_leg_vars("everyone", data(), normalise(CALLER, "DE"), queue())


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("policy", ["caller", "transferring-agent", "queue"])
def test_hostile_caller_data_cannot_break_the_bridge(bad, policy):
    call_data = {
        "Caller-Caller-ID-Number": bad,
        "Caller-Caller-ID-Name": bad,
        "Caller-ANI": bad,
        "variable_sip_h_Referred-By": bad,
        "variable_transfer_source": f"1:u:att_xfer:{bad}/x",
        "variable_sip_P-Asserted-Identity": bad,
    }
    q = queue(agent_sees=policy, display_name=bad)
    leg, pres = agent_leg_vars(None, call_data, network_caller(call_data, "DE"), q)
    _check_agent_leg(leg)
    for text in (pres.number or "", pres.name or ""):
        assert not UNSAFE & set(text)


def _check_agent_leg(leg):
    """The leg variables survive dialstring.var_block unchanged and give one clean leg."""
    for name, value in leg.items():
        assert dialstring.var_value(value) == value, name
        assert not UNSAFE & set(value)
        assert value
    contact = "user/1001@pbx.example"
    bridge = dialstring.bridge_string(
        {"leg_timeout": "15"}, [({"fsacd_agent": "1001", **leg}, contact)]
    )
    glob, rest = split_block(bridge, "{", "}", last=False)
    assert glob == {"leg_timeout": "15"}
    legs = split_legs(rest)
    assert len(legs) == 1 and "|" not in rest and ":_:" not in rest
    parsed, endpoint = split_block(legs[0], "[", "]")
    assert endpoint == contact
    assert parsed == {"fsacd_agent": "1001", **leg}


# --- outbound ---------------------------------------------------------------------------------


def entry(number, **kw):
    base = dict(number=number, status="verified", verified_at=NOW - 10, via="call")
    base.update(kw)
    return NumberEntry(**base)


class Snap(VerifiedSnapshot):
    """A snapshot that checks at NOW (the real one uses the wall clock)."""

    def check(self, number, *, queue=None, agent=None, now=None):
        return super().check(number, queue=queue, agent=agent, now=NOW)

    def agent_number(self, agent_id, *, queue=None, now=None):
        return super().agent_number(agent_id, queue=queue, now=NOW)


SNAP = Snap(
    entries={
        e.number: e
        for e in [
            entry(POOL_A),
            entry(POOL_B),
            entry(FIXED),
            entry(CALLED, queues=("support",)),
            entry(AGENT_NUM, agent="alice"),
            entry("+4930123458", agent="bob"),  # bob's, via the registry
            entry("+4989123457", status="pending"),
            entry("+4989123458", expires_at=NOW - 1),
            entry("+4989123459", queues=("sales",)),
            entry("+4922129191555", status="pending"),  # inside the verified block below
        ]
    },
    blocks=(
        BlockEntry("+4922129191", "DDI block 0..999", "ops", NOW - 100, 0.0),
        BlockEntry("+4940999", "old block", "ops", NOW - 100, NOW - 1),
    ),
)

NETWORK = {
    "fsacd_cid": "network",
    "sip_cid_type": "pid",
    "origination_privacy": "screen",
    "origination_caller_id_number": NET,
    "origination_caller_id_name": "Support",
}
CLIR = {
    "fsacd_cid": "anonymous",
    "sip_cid_type": "none",
    "origination_privacy": "hide_name:hide_number",
    "origination_caller_id_name": "Anonymous",
    "origination_caller_id_number": "anonymous",
    "sip_h_P-Asserted-Identity": f"<sip:{NET}@{HOST}>",
    "sip_h_Privacy": "id",
}


def clip(number, name="Support", policy="pool"):
    """CLIP no screening: the chosen number in From, the network number in PAI."""
    return {
        "fsacd_cid": policy,
        "sip_cid_type": "none",
        "origination_privacy": "none",
        "origination_caller_id_number": number,
        "origination_caller_id_name": name,
        "sip_h_P-Asserted-Identity": f"<sip:{NET}@{HOST}>",
    }


POOL = dict(customer_sees="pool", pool_existing=POOL_A, pool_new=POOL_B)
ALICE = {"id": "alice", "number": AGENT_NUM, "name": "Alice Smith"}
CUST = {"id": "c-17", "name": "ACME"}

# queue settings, call (customer, agent, callback_of, destination) -> vars, reason part
OUTBOUND = [
    ("network", {}, {}, NETWORK, "network number"),
    ("network-agent", {}, {"agent": ALICE}, NETWORK, "network number"),
    ("anonymous", {"customer_sees": "anonymous"}, {}, CLIR, "CLIR"),
    ("anonymous-abroad", {"customer_sees": "anonymous", "network_only_countries": ("US",)},
     {"dest": DEST_US}, CLIR, "CLIR"),
    ("pool-existing", POOL, {"customer": CUST}, clip(POOL_A), "existing-customer pool"),
    ("pool-new", POOL, {"customer": None}, clip(POOL_B), "new-customer pool"),
    ("pool-new-empty-record", POOL, {"customer": {}}, clip(POOL_B), "new-customer pool"),
    ("pool-fixed", {**POOL, "pool_fixed": FIXED}, {"customer": CUST}, clip(FIXED), "fixed pool"),
    ("pool-callback", POOL, {"customer": CUST, "callback_of": CALLED}, clip(CALLED), "callback"),
    ("pool-callback-off", {**POOL, "pool_callback": False},
     {"customer": CUST, "callback_of": CALLED}, clip(POOL_A), "existing-customer"),
    ("pool-callback-unregistered", POOL, {"callback_of": "+4922129200000"}, NETWORK,
     "+4922129200000 is not registered: fell back to network"),
    ("pool-callback-other-queue", POOL, {"queue": "sales", "callback_of": CALLED}, NETWORK,
     "is not assigned to queue sales"),
    ("pool-callback-invalid", POOL, {"callback_of": "0221 29191000"}, NETWORK, "not a valid E.164"),
    ("pool-pending", {**POOL, "pool_fixed": "+4989123457"}, {}, NETWORK,
     "+4989123457 is not verified: fell back to network"),
    ("pool-expired", {**POOL, "pool_fixed": "+4989123458"}, {}, NETWORK, "verification expired"),
    ("pool-unregistered", {**POOL, "pool_fixed": "+4969123457"}, {}, NETWORK, "not registered"),
    ("pool-other-queue", {**POOL, "pool_fixed": "+4989123459"}, {}, NETWORK,
     "is not assigned to queue support"),
    ("pool-block", {**POOL, "pool_fixed": "+4922129191555"}, {}, clip("+4922129191555"),
     "in block +4922129191"),
    ("pool-expired-block", {**POOL, "pool_fixed": "+4940999123"}, {}, NETWORK,
     "block +4940999 verification expired"),
    ("pool-us", {**POOL, "network_only_countries": ("US",)}, {"dest": DEST_US}, NETWORK,
     "presentation to US is not reliable"),
    ("pool-us-rule-de", {**POOL, "network_only_countries": ("US",)}, {"customer": CUST},
     clip(POOL_A), "existing"),
    ("pool-abroad", {**POOL, "network_only_countries": ("abroad",)}, {"dest": DEST_GB}, NETWORK,
     "GB (abroad)"),
    ("pool-abroad-home", {**POOL, "network_only_countries": ("abroad",)}, {}, clip(POOL_B), "new"),
    ("agent", {"customer_sees": "agent"}, {"agent": ALICE},
     clip(AGENT_NUM, "Alice Smith", "agent"), f"agent alice {AGENT_NUM} (verified via call)"),
    ("agent-registry", {"customer_sees": "agent"}, {"agent": {"id": "bob"}},
     clip("+4930123458", "Support", "agent"), "agent bob"),
    ("agent-none", {"customer_sees": "agent"}, {"agent": {"id": "carol"}}, NETWORK,
     "agent carol has no direct number"),
    ("agent-no-agent", {"customer_sees": "agent"}, {"agent": None}, NETWORK, "no direct number"),
    ("agent-others-number", {"customer_sees": "agent"},
     {"agent": {"id": "carol", "number": AGENT_NUM}}, NETWORK, "belongs to agent alice"),
    ("agent-unverified", {"customer_sees": "agent"},
     {"agent": {"id": "dave", "number": "+4989123457"}}, NETWORK, "is not verified"),
    ("agent-hostile-number", {"customer_sees": "agent"},
     {"agent": {"id": "dave", "number": "+49 30,1|2}"}}, NETWORK, "no direct number"),
    ("agent-abroad", {"customer_sees": "agent", "network_only_countries": ("US", "GB")},
     {"agent": ALICE, "dest": DEST_GB}, NETWORK, "presentation to GB"),
]  # fmt: skip


@pytest.mark.parametrize("name,qkw,call,expect,why", OUTBOUND, ids=[c[0] for c in OUTBOUND])
def test_customer_leg_policy(name, qkw, call, expect, why):
    q = queue(**{"name": call.get("queue", "support"), **qkw})
    dest = normalise(call.get("dest", DEST_DE), "DE")
    leg, reason = customer_leg_vars(
        q,
        destination=dest,
        customer=call.get("customer"),
        verified=SNAP,
        agent=call.get("agent"),
        callback_of=call.get("callback_of"),
        network_number=NET,
        host=HOST,
    )
    assert leg == expect
    assert why in reason
    dial = outbound_dial_string(q, dest, {"origination_uuid": "u-1", **leg})
    parsed, endpoint = split_block(dial, "{", "}")
    assert parsed == {"origination_uuid": "u-1", **leg}
    assert endpoint == f"sofia/gateway/gw1/{dest.e164}"


def test_network_number_and_host_defaults_and_errors():
    dest = normalise(DEST_DE, "DE")
    kw = dict(destination=dest, customer=None, verified=SNAP, agent=None, callback_of=None)
    # the queue's network number when none is passed; network needs no PAI host
    leg, _ = customer_leg_vars(queue(), network_number=None, host=None, **kw)
    assert leg == NETWORK
    with pytest.raises(ValueError, match="network number"):
        customer_leg_vars(queue(network_number=None), network_number=None, host=HOST, **kw)
    with pytest.raises(ValueError, match="network number"):
        customer_leg_vars(queue(), network_number="+49 30 901820", host=HOST, **kw)
    for policy in ("pool", "agent", "anonymous"):
        q = queue(**{**POOL, "customer_sees": policy})
        for host in (None, "", "pbx example", "h,x", "h}"):
            with pytest.raises(ValueError, match="pai_host"):
                customer_leg_vars(q, network_number=NET, host=host, **kw)
    bad = {**kw, "destination": normalise("12", "DE")}
    with pytest.raises(ValueError, match="destination"):
        customer_leg_vars(queue(), network_number=NET, host=HOST, **bad)


def test_real_snapshot_uses_the_clock():
    """VerifiedSnapshot without ``now`` checks against the wall clock."""
    snap = VerifiedSnapshot(entries={POOL_A: entry(POOL_A, verified_at=1.0, expires_at=2.0)})
    ok, why = snap.check(POOL_A)
    assert not ok and "expired" in why
    q = queue(customer_sees="pool", pool_fixed=POOL_A)
    leg, reason = customer_leg_vars(
        q,
        destination=normalise(DEST_DE, "DE"),
        customer=None,
        verified=snap,
        agent=None,
        callback_of=None,
        network_number=NET,
        host=HOST,
    )
    assert leg == NETWORK and "expired" in reason


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("policy", ["network", "pool", "agent", "anonymous"])
def test_hostile_crm_and_agent_data_cannot_break_the_dial_string(bad, policy):
    q = queue(
        customer_sees=policy,
        display_name=bad,
        **{k: v for k, v in POOL.items() if k != "customer_sees"},
    )
    leg, reason = customer_leg_vars(
        q,
        destination=normalise(DEST_DE, "DE"),
        customer={"id": bad, "name": bad, "numbers": [bad]},
        verified=SNAP,
        agent={"id": "alice", "number": AGENT_NUM, "name": bad},
        callback_of=bad,
        network_number=NET,
        host=HOST,
    )
    dial = outbound_dial_string(q, normalise(DEST_DE, "DE"), leg)
    parsed, endpoint = split_block(dial, "{", "}")
    assert set(parsed) == set(leg)
    assert endpoint == f"sofia/gateway/gw1/{DEST_DE}"
    for name, value in parsed.items():
        assert not UNSAFE & set(value), (name, value)
        assert value
    # also survives the originate API's space splitting as ONE argument
    argv = originate_argv(f"originate {dial} &park")
    assert len(argv) == 3 and argv[2] == "&park"
    assert split_block(argv[1], "{", "}") == (parsed, endpoint)


def test_outbound_dial_string_template_and_gateway():
    dest = normalise(DEST_DE, "DE")
    q = queue(gateway_template="sofia/external/{e164}@carrier.example", gateway=None)
    assert outbound_dial_string(q, dest, {}) == f"sofia/external/{DEST_DE}@carrier.example"
    with pytest.raises(ValueError, match="gateway"):
        outbound_dial_string(queue(gateway=None), dest, {})
    with pytest.raises(ValueError, match="destination"):
        outbound_dial_string(queue(), normalise("anonymous", "DE"), {})
    with pytest.raises(ValueError, match="variable name"):
        outbound_dial_string(queue(), dest, {"a,b": "1"})
    with pytest.raises(ValueError, match="unsafe"):
        outbound_dial_string(queue(), dest, {"sip_h_X-Foo": "a,b"})
    spaced = outbound_dial_string(queue(), dest, {"origination_caller_id_name": "Sales Team"})
    assert spaced.startswith("{origination_caller_id_name='Sales Team'}")
    assert split_block(spaced, "{", "}")[0] == {"origination_caller_id_name": "Sales Team"}


def test_config_keys_reach_the_policy():
    cfg = load_text(
        """
        [numbers]
        network_number = "+49 30 901820"
        pai_host = "pbx.example"
        gateway = "gw1"

        [queues.sales]
        number = "+4930123456"
        agent_sees = "queue"
        customer_sees = "pool"
        pool_existing = "+4989123456"
        pool_new = "+4940123456"
        network_only_countries = ["us", "abroad"]
        """,
        env={},
    )
    q = cfg.queues["sales"]
    assert (q.gateway, q.network_number, q.network_only_countries) == ("gw1", NET, ("US", "abroad"))
    leg, reason = customer_leg_vars(
        q,
        destination=normalise(DEST_DE, "DE"),
        customer=CUST,
        verified=SNAP,
        agent=None,
        callback_of=None,
        network_number=None,
        host=cfg.numbers.pai_host,
    )
    assert leg == clip(POOL_A, name=POOL_A)  # no display_name: the number is the name


# --- FreeSWITCH's splitting, for the checks above ---------------------------------------------


def split_unquoted(text: str, delim: str) -> list[str]:
    """switch_separate_string: split on ``delim`` outside single quotes (no escapes here:
    the values under test must not contain backslashes at all)."""
    assert "\\" not in text
    parts, cur, inside = [], [], False
    for ch in text:
        if ch == "'":
            inside = not inside
            cur.append(ch)
        elif ch == delim and not inside:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def split_legs(text: str) -> list[str]:
    """Bridge legs: split on ``,`` outside quotes and ``[...]`` blocks."""
    parts, cur, inside, depth = [], [], False, 0
    for ch in text:
        if ch == "'":
            inside = not inside
        elif not inside and ch == "[":
            depth += 1
        elif not inside and ch == "]":
            depth -= 1
        elif ch == "," and not inside and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def split_block(
    text: str, open_c: str, close_c: str, *, last: bool = True
) -> tuple[dict[str, str], str]:
    """A leading ``{...}``/``[...]`` block → its variables, and the rest (with ``last``: one
    plain endpoint, no further blocks, legs or separators)."""
    if not text.startswith(open_c):
        return {}, text
    depth = 0
    i = 0
    for i, ch in enumerate(text):  # noqa: B007 - i is used after the loop
        if ch == open_c:
            depth += 1
        elif ch == close_c:
            depth -= 1
            if depth == 0:
                break
    else:
        raise AssertionError("unterminated block")
    body, rest = text[1:i], text[i + 1 :]
    out = {}
    for part in split_unquoted(body, ","):
        name, sep, value = part.partition("=")
        assert sep and name and name not in out, part
        out[name] = _unquote(value)
    if last:
        assert not any(c in rest for c in "{}[],|' ") and ":_:" not in rest, rest
    return out, rest


def originate_argv(cmd: str) -> list[str]:
    """The ``originate`` API's argv: split on unquoted spaces, then every quote pair removed
    (cleanup_separated_string)."""
    out = []
    for part in split_unquoted(cmd, " "):
        if part:
            assert part.count("'") % 2 == 0, part
            out.append(part.replace("'", ""))
    return out


def test_parser_self_check():
    """The test parser sees an injected leg where a naive string would have one."""
    evil = "{a=x}sofia/gateway/evil/1,user/2"
    with pytest.raises(AssertionError):
        split_block(evil, "{", "}")
    assert originate_argv("originate {a='b c'}x 'p q' inline") == [
        "originate",
        "{a=b c}x",
        "p q",
        "inline",
    ]
    assert callerid.var_block({}) == ""


# --- config validation of the queue keys ------------------------------------------------------

NUMBERS_OK = '[numbers]\nnetwork_number = "+4930901820"\npai_host = "pbx.example"\n'


@pytest.mark.parametrize(
    "body,numbers_section,error",
    [
        ('agent_sees = "everyone"', NUMBERS_OK,
         'queues.q.agent_sees: must be one of caller, queue, transferring-agent, anonymous,'
         ' got "everyone"'),
        ('agent_sees = "queue"', NUMBERS_OK,
         "queues.q.agent_sees: \"queue\" needs the queue's number (key number)"),
        ('allow_network_number = "yes"', NUMBERS_OK,
         'queues.q.allow_network_number: must be true or false, got "yes"'),
        ('customer_sees = "cnn"', NUMBERS_OK, "queues.q.customer_sees: must be one of network,"),
        ('customer_sees = "pool"', NUMBERS_OK,
         'queues.q.customer_sees: "pool" needs pool_fixed, or both pool_existing and pool_new'),
        ('customer_sees = "pool"\npool_existing = "+4989123456"', NUMBERS_OK,
         '"pool" needs pool_fixed, or both'),
        ('customer_sees = "anonymous"', "",
         'queues.q.customer_sees: "anonymous" needs the network number'),
        ('customer_sees = "agent"', '[numbers]\nnetwork_number = "+4930901820"',
         'queues.q.customer_sees: "agent" needs numbers.pai_host'),
        ('pool_fixed = "0221 29191999"', NUMBERS_OK,
         'queues.q.pool_fixed: must be a valid E.164 number like +4922129191999, got "0221'),
        ('network_number = "+4912"', NUMBERS_OK, "queues.q.network_number: must be a valid E.164"),
        ('network_only_countries = "US"', NUMBERS_OK,
         "queues.q.network_only_countries: must be an array of strings"),
        ('network_only_countries = ["XX"]', NUMBERS_OK,
         'queues.q.network_only_countries: "XX" is not an ISO 3166 alpha-2 region'),
        ('gateway = "gw 1"', NUMBERS_OK, "queues.q.gateway: may only use letters, digits"),
        ('gateway_template = "sofia/gateway/{gw}/"', NUMBERS_OK,
         "queues.q.gateway_template: must contain {e164}"),
        ('gateway_template = "sofia/{x}/{e164}"', NUMBERS_OK,
         "queues.q.gateway_template: may only contain the placeholders {gw} and {e164}"),
        ('gateway_template = "sofia/gateway/{gw}/{e164},user/1"', NUMBERS_OK,
         "queues.q.gateway_template: contains characters not allowed in a dial string leg: ,"),
        ('agent_see = "caller"', NUMBERS_OK,
         "queues.q.agent_see: unknown key (did you mean agent_sees?)"),
    ],
)  # fmt: skip
def test_queue_config_errors_name_the_key(body, numbers_section, error):
    from fsacd.config import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_text(f"{numbers_section}\n[queues.q]\n{body}\n", env={})
    assert any(error in line for line in exc.value.errors), exc.value.errors


def test_queue_config_defaults_and_all_keys():
    cfg = load_text("[queues.q]\n", env={})
    q = cfg.queues["q"]
    assert (q.agent_sees, q.allow_network_number, q.customer_sees) == ("caller", False, "network")
    assert (q.pool_callback, q.network_only_countries, q.gateway) == (True, (), None)
    assert q.gateway_template == "sofia/gateway/{gw}/{e164}"
    cfg = load_text(
        NUMBERS_OK
        + """
        [queues.q]
        number = "+4930123456"
        agent_sees = "transferring-agent"
        allow_network_number = true
        customer_sees = "agent"
        pool_fixed = "+4969123456"
        pool_callback = false
        network_number = "+4930901821"
        network_only_countries = ["abroad", "gb"]
        gateway = "carrier-1"
        gateway_template = "sofia/gateway/{gw}/{e164}@carrier.example"
        """,
        env={},
    )
    q = cfg.queues["q"]
    assert (q.agent_sees, q.allow_network_number, q.customer_sees, q.pool_fixed) == (
        "transferring-agent",
        True,
        "agent",
        FIXED,
    )
    assert (q.pool_callback, q.network_number, q.network_only_countries) == (
        False,
        "+4930901821",
        ("abroad", "GB"),
    )
    assert outbound_dial_string(q, normalise(DEST_DE, "DE"), {}) == (
        f"sofia/gateway/carrier-1/{DEST_DE}@carrier.example"
    )


# --- what the phones display: through the FreeSWITCH stand-in ---------------------------------

CUSTOMER_EP = f"sofia/gateway/gw1/{DEST_DE}"
AGENT_EP = "user/1001@pbx.example"


@pytest.fixture
def standin():
    standin = pytest.importorskip("fsacd.standin")
    fs = standin.FakeFreeSwitch(inbound=("127.0.0.1", 0), heartbeat_interval=None)
    fs.start()
    for ep in (CUSTOMER_EP, AGENT_EP):
        fs.phones.register(ep, standin.PhoneBehaviour.never_answers())
    yield fs
    fs.stop()


def ringing_display(fs, dial, endpoint):
    """Originate ``dial`` over the inbound event socket; what the phone shows while ringing."""
    import gevent

    from fsacd.esl.session import InboundClient

    client = InboundClient(*fs.inbound_address, "ClueCon", timeout=2, command_timeout=5)
    client.connect()
    try:
        job = gevent.spawn(client.bgapi, f"originate {dial} &park", 5)
        leg = None
        with gevent.Timeout(3):
            while leg is None or leg.channel is None:
                gevent.sleep(0.02)
                leg = fs.leg(endpoint)
        display = leg.display
        fs.execute_api(f"uuid_kill {leg.uuid}")
        job.get(timeout=5)
        return display
    finally:
        client.close()


# policy -> the identity headers captured from real FreeSWITCH (sip-caller-id-headers.md)
WIRE = {
    "network": {
        "From": f'"Support" <sip:{NET}@127.0.0.1>',
        "Privacy": "none",
        "P-Asserted-Identity": f'"Support" <sip:{NET}@127.0.0.1>',
    },
    "pool": {
        "From": f'"Support" <sip:{FIXED}@127.0.0.1>',
        "P-Asserted-Identity": f"<sip:{NET}@{HOST}>",
    },
    "agent": {
        "From": f'"Alice Smith" <sip:{AGENT_NUM}@127.0.0.1>',
        "P-Asserted-Identity": f"<sip:{NET}@{HOST}>",
    },
    "anonymous": {
        "From": '"Anonymous" <sip:anonymous@127.0.0.1>',
        "Privacy": "id",
        "P-Asserted-Identity": f"<sip:{NET}@{HOST}>",
    },
}


@pytest.mark.parametrize("policy", list(WIRE))
def test_customer_phone_display_in_the_standin(standin, policy):
    q = queue(customer_sees=policy, pool_fixed=FIXED)
    dest = normalise(DEST_DE, "DE")
    leg, _ = customer_leg_vars(
        q,
        destination=dest,
        customer=None,
        verified=SNAP,
        agent=ALICE,
        callback_of=None,
        network_number=NET,
        host=HOST,
    )
    dial = outbound_dial_string(q, dest, {**leg, "originate_timeout": "5"})
    display = ringing_display(standin, dial, CUSTOMER_EP)
    headers = {k: v for k, v in display.sip_headers.items() if k in WIRE["anonymous"] | {"From": 1}}
    assert headers == WIRE[policy]
    assert display.hide_number is (policy == "anonymous")


@pytest.mark.parametrize(
    "policy,call,number,name,hidden",
    [
        ("caller", "plain", CALLER, "Erika Muster", False),
        ("caller", "withheld", "anonymous", "Anonymous", True),
        ("queue", "withheld", QUEUE_NUMBER, "Support", False),
        ("transferring-agent", "blind", "1001", "Transfer from 1001", False),
        ("anonymous", "plain", "anonymous", "Anonymous", True),
    ],
)
def test_agent_phone_display_in_the_standin(standin, policy, call, number, name, hidden):
    call_data = CALLS[call]
    leg, _ = agent_leg_vars(policy, call_data, network_caller(call_data, "DE"), queue())
    # the agent leg's variables are meant for ``bridge``; for the originate API spaces are quoted
    dial = callerid.var_block({**leg, "originate_timeout": "5"}) + AGENT_EP
    display = ringing_display(standin, dial, AGENT_EP)
    assert (display.number, display.name, display.hide_number) == (number, name, hidden)
    assert display.sip_headers["From"] == f'"{name}" <sip:{number}@127.0.0.1>'
