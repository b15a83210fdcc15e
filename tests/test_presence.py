"""Agents FreeSWITCH knows are busy elsewhere: the event handling, on a real Redis."""

from __future__ import annotations

from fsacd.acd.presence import Presence, channel_users, contact_user
from fsacd.esl.framing import Event
from fsacd.state.store import Store


def make(r) -> Presence:
    store = Store(r, controller_id="t")
    store.sync_queues(["support"])
    store.add_agent("1001", "user/1001@pbx.example", {"support": 1})
    store.add_agent("1002", "sofia/internal/1002@pbx.example", {"support": 2})
    return Presence(store, ("127.0.0.1", 1), "x")


def ev(name: str, **headers: str) -> Event:
    return Event({"Event-Name": name, **headers})


def test_contact_and_channel_users():
    assert contact_user("user/1001@PBX.example") == "1001@pbx.example"
    assert contact_user("sofia/internal/sip:1002@pbx.example;transport=tcp") == ("1002@pbx.example")
    assert contact_user("loopback/1001/default") is None
    assert channel_users(
        {
            "variable_presence_id": "1001@pbx.example",
            "variable_dialed_user": "1002",
            "variable_dialed_domain": "pbx.example",
        }
    ) == {"1001@pbx.example", "1002@pbx.example"}


def test_direct_call_marks_the_agent_busy_until_it_ends(r):
    p = make(r)
    p.on_event(
        ev("CHANNEL_CREATE", **{"Unique-ID": "u1", "variable_presence_id": "1001@pbx.example"})
    )
    assert p.busy_agents() == {"1001"}
    # fsacd's own legs do not count
    p.on_event(
        ev(
            "CHANNEL_CREATE",
            **{
                "Unique-ID": "u2",
                "variable_fsacd_agent": "1002",
                "variable_dialed_user": "1002",
                "variable_dialed_domain": "pbx.example",
            },
        )
    )
    assert p.busy_agents() == {"1001"}
    p.on_event(
        ev(
            "CHANNEL_HANGUP_COMPLETE",
            **{"Unique-ID": "u1", "variable_presence_id": "1001@pbx.example"},
        )
    )
    assert p.busy_agents() == set()


def test_unregister_and_dnd(r):
    p = make(r)
    p.on_event(
        ev(
            "CUSTOM",
            **{
                "Event-Subclass": "sofia::unregister",
                "from-user": "1002",
                "from-host": "pbx.example",
            },
        )
    )
    assert p.busy_agents() == {"1002"}
    p.on_event(
        ev(
            "CUSTOM",
            **{
                "Event-Subclass": "sofia::register",
                "from-user": "1002",
                "from-host": "pbx.example",
            },
        )
    )
    assert p.busy_agents() == set()
    p.on_event(
        ev(
            "PRESENCE_IN",
            proto="sip",
            **{"from": "1001@pbx.example", "rpid": "busy", "status": "Do Not Disturb"},
        )
    )
    assert p.busy_agents() == {"1001"}
    p.on_event(
        ev(
            "PRESENCE_IN",
            proto="sip",
            **{"from": "1001@pbx.example", "rpid": "", "status": "Available"},
        )
    )
    assert p.busy_agents() == set()


def test_agent_keys_reported(r):
    p = make(r)
    seen = []
    p.on_agent_dtmf = lambda uuid, digit: seen.append((uuid, digit))
    p.on_event(ev("DTMF", **{"Unique-ID": "leg-1", "DTMF-Digit": "*"}))
    assert seen == [("leg-1", "*")]


def test_a_resync_keeps_the_busy_state_of_another_freeswitch(r):
    """Issue 11 item 11: two FreeSWITCH servers, one watcher each. The watcher of switch A
    reconnects and resyncs from A's (empty) channel list: agent 1002's outside call on switch
    B stays; B's own resync, with the call gone there, clears it."""
    from fsacd.esl.session import InboundClient
    from fsacd.standin import FakeFreeSwitch

    switches = [FakeFreeSwitch(inbound=("127.0.0.1", 0), password="ClueCon") for _ in "AB"]
    for fs in switches:
        fs.start()
    try:
        watch_a, watch_b = make(r), make(r)
        core_b = switches[1].core_uuid
        watch_b.on_event(
            ev(
                "CHANNEL_CREATE",
                **{
                    "Unique-ID": "b-call",
                    "Core-UUID": core_b,
                    "variable_presence_id": "1002@pbx.example",
                },
            )
        )
        assert watch_a.busy_agents() == {"1002"}
        for watcher, fs in zip((watch_a, watch_b), switches, strict=True):
            client = InboundClient(*fs.inbound_address, "ClueCon")
            client.connect()
            try:
                watcher.on_connect(client)
            finally:
                client.close()
            if watcher is watch_a:
                assert watch_a.busy_agents() == {"1002"}  # A's resync left B's call alone
            assert watcher.core == fs.core_uuid
        assert watch_b.busy_agents() == set()  # B has no such channel any more
    finally:
        for fs in switches:
            fs.stop()
