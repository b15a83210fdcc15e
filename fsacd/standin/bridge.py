"""``originate`` and ``bridge``, after switch_ivr_originate.c / switch_ivr_bridge.c / mod_dptools.

Results land on the caller exactly where FreeSWITCH puts them: ``originate_signal_bond`` and
``originated_legs`` per leg created, ``last_bridge_hangup_cause`` when a leg hangs up (its
signal bond is the caller), then ``originate_disposition``, ``DIALSTATUS``, one
``originate_causes`` entry per leg; on success ``signal_bond`` and the CHANNEL_BRIDGE event.
Timeouts use whole epoch seconds like FreeSWITCH: the call-wide limit (``call_timeout`` on
the caller, ``originate_timeout`` in ``{}``, default 60) fires when ``now_s - start_s >= limit``
(NO_ANSWER); ``leg_timeout`` fires when ``now_s - start_s > leg_timeout`` (ALLOTTED_TIMEOUT).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

import gevent.event

from .apps import app, parse_all_events, parse_next_event
from .causes import CAUSES, dialstatus
from .channel import Channel, now_us
from .dialstring import DialStringError, parse_dialstring
from .fsstrings import atoi, is_true, separate_string
from .media import is_moh
from .phones import DialSwitch, Leg, create_leg

#: Caller variables copied into the ``{}`` variables when not given there.
INHERITED = (
    "group_confirm_key group_confirm_file group_confirm_read_timeout group_confirm_cancel_timeout "
    "group_confirm_timeout forked_dial fail_on_single_reject hangup_on_single_reject "
    "ignore_early_media bridge_early_media originate_continue_on_timeout ignore_ring_ready "
    "monitor_early_media_ring monitor_early_media_ring_total monitor_early_media_fail "
    "return_ring_ready ring_ready instant_ringback progress_timeout language"
).split()


@dataclass
class OriginateResult:
    ok: bool
    cause: str
    winner: Leg | None = None
    legs: list[Leg] = field(default_factory=list)


def originate(
    fs: DialSwitch, caller: Channel | None, data: str, timeout: int = 0
) -> OriginateResult:
    """Dial ``data``; with a caller, its session runs the ringing loop (and nested commands)."""
    try:
        ds = parse_dialstring(data)
    except DialStringError as exc:
        if caller is not None:
            caller.note("originate_parse_error", str(exc))
        return OriginateResult(False, "DESTINATION_OUT_OF_ORDER")
    gvars = list(ds.variables)
    names = {k.lower() for k, _ in gvars}
    if caller is not None:
        for name in INHERITED:
            value = caller.get_var(name)
            if value is not None and name not in names:
                gvars.append((name, value))
                names.add(name)
        for name, value in caller.exported.items():
            if name.lower() not in names and value is not None:
                gvars.append((name, value))
                names.add(name.lower())
    gmap = {k.lower(): v for k, v in gvars}
    timelimit = timeout
    if caller is not None and caller.get_var("call_timeout") is not None:
        timelimit = atoi(caller.get_var("call_timeout"))
    if atoi(gmap.get("originate_timeout")) > 0:
        timelimit = atoi(gmap["originate_timeout"])
    if timelimit <= 0:
        timelimit = 60
    ignore_early = is_true(gmap.get("ignore_early_media"))
    instant_ringback = is_true(gmap.get("instant_ringback"))
    ringback = None
    if caller is not None:
        if caller.answered:
            ringback = caller.get_var("transfer_ringback")
        if not ringback:
            ringback = caller.get_var("ringback")
        caller.set_var("originate_disposition", "failure")
        caller.set_var("DIALSTATUS", "INVALIDARGS")
        if caller.direction == "inbound" and not (caller.answered or caller.early):
            # a caller not yet answered gets media first (``bridge-before-answer``)
            caller.pre_answer()
    all_legs: list[Leg] = []
    cause = "NORMAL_CLEARING"
    for group in ds.groups:
        if caller is not None and not caller.ready():
            cause = "ORIGINATOR_CANCEL"
            break
        ok, cause, winner, legs = _try_group(
            fs, caller, group, gvars, timelimit, ignore_early, instant_ringback, ringback
        )
        all_legs.extend(legs)
        if ok:
            return OriginateResult(True, "SUCCESS", winner, all_legs)
        if cause == "ORIGINATOR_CANCEL":
            break
    return OriginateResult(False, cause, None, all_legs)


def _try_group(
    fs: DialSwitch,
    caller: Channel | None,
    group: list,
    gvars: list[tuple[str, str]],
    timelimit: int,
    ignore_early: bool,
    instant_ringback: bool,
    ringback: str | None,
) -> tuple[bool, str, Leg | None, list[Leg]]:
    start_s = int(time.time())
    legs: list[Leg] = []
    live: list[Leg] = []
    reason: str | None = None
    # without a caller (api originate) the loop waits on its own event: the legs' ``sig`` is
    # their session's (an originated leg runs its own session), clearing it would lose kicks
    wake = gevent.event.Event()
    for dl in group:
        lvars = list(gvars)
        for k, v in dl.variables:
            lvars = [(a, b) for a, b in lvars if a.lower() != k.lower()]
            lvars.append((k, v))
        if caller is not None and not caller.ready():
            break
        leg = create_leg(fs, caller, dl.endpoint, lvars, not ignore_early)
        legs.append(leg)
        if leg.channel is None:
            reason = leg.failed_cause
            continue
        if caller is not None:
            caller.set_var("originate_signal_bond", leg.uuid)
            p = leg.channel.profile
            caller.vars.push(
                "originated_legs", f"{leg.uuid};{p.callee_id_name};{p.callee_id_number}"
            )
            leg.channel.hooks.append(lambda ch, what, detail: caller.kick())
        else:
            leg.channel.hooks.append(lambda ch, what, detail: wake.set())
        live.append(leg)
    timeouts = {
        id(leg): atoi(leg.channel.get_var("leg_timeout")) for leg in live if leg.channel is not None
    }
    winner: Leg | None = None
    idx = "nada"
    heard_ring = False
    if caller is not None and caller.answered and ringback and instant_ringback:
        caller.hear("moh" if is_moh(ringback) else "ringback")
        heard_ring = True
    elif caller is not None and caller.answered:
        caller.hear("silence")
    while live:
        if caller is not None:
            caller.sig.clear()
            if not caller.alive():
                idx = "cancel"
                break
        else:
            wake.clear()
        now = time.time()
        elapsed = int(now) - start_s
        for leg in live:
            ch = leg.channel
            limit = timeouts[id(leg)]
            if ch is not None and ch.up() and limit > 0 and elapsed > limit:
                ch.hangup("ALLOTTED_TIMEOUT")
        if caller is not None and parse_all_events(caller):
            continue
        up = [leg for leg in live if leg.channel is not None and leg.channel.up()]
        if not up:
            break
        answered = [leg for leg in up if leg.channel.answered]
        early = [leg for leg in up if leg.channel.early]
        if answered:
            winner = answered[0]
            break
        if early and not ignore_early:
            winner = early[0]
            break
        ringing = any("RING_READY" in leg.channel.flags for leg in up)
        if caller is not None and ringing and not heard_ring:
            heard_ring = True
            if ringback and caller.answered:
                caller.hear("moh" if is_moh(ringback) else "ringback")
            elif not caller.answered:
                caller.mark_ring_ready()
                caller.hear("moh" if ringback and is_moh(ringback) else "ringback")
        if elapsed >= timelimit:
            idx = "timeout"
            break
        next_second = int(now) + 1 - now
        if caller is not None:
            # an answered caller's originate loop reads its frames: it notices the answer at
            # the next tick; a caller not yet answered is bridged at once (the recordings)
            if caller.answered:
                caller.wait_frame(next_second + 0.001)
            else:
                caller.sig.wait(next_second + 0.001)
        else:
            wake.wait(next_second + 0.001)
    if caller is not None and not caller.ready():
        idx = "cancel"
        winner = None
    # losers and leftovers (the "for i != idx" loop)
    for leg in live:
        ch = leg.channel
        if leg is winner or ch is None or not ch.up():
            continue
        if idx == "timeout":
            why = "NO_ANSWER"
        elif idx == "cancel":
            why = "ORIGINATOR_CANCEL"
        elif len(group) > 1:
            why = "LOSE_RACE"
            ch.set_var("group_dial_status", "loser")
        else:
            why = "NO_ANSWER"
        ch.hangup(why)
    if winner is not None and caller is not None:
        if winner.channel.answered and not caller.answered:
            caller.answer()  # the caller is answered with the bridge
        caller.set_var("originate_disposition", "call accepted")
        caller.set_var("DIALSTATUS", "EARLY" if winner.channel.answered else "ANSWER")
        cause = "SUCCESS"
    elif winner is not None:
        cause = "SUCCESS"
    else:
        cause = ""
        for leg in live:
            if leg.channel is not None:
                cause = leg.channel.hangup_cause or ""
                break
        if not cause:
            cause = reason or (caller.hangup_cause if caller is not None else None) or ""
        if not cause:
            cause = "DESTINATION_OUT_OF_ORDER"
        if cause in ("SUCCESS", "NONE"):
            cause = "ORIGINATOR_CANCEL"
        if idx == "cancel":
            cause = "ORIGINATOR_CANCEL"
        elif idx == "timeout":
            cause = "NO_ANSWER"
    if caller is not None:
        caller.set_var("originate_disposition", cause)
        caller.set_var("DIALSTATUS", dialstatus(cause))
        for leg in live:
            ch = leg.channel
            assert ch is not None
            caller.vars.push("originate_causes", f"{ch.uuid};{ch.hangup_cause or 'NONE'}")
    if winner is not None:
        if caller is not None:
            w = winner.channel
            caller.originatee = w.profile.clone()
            caller.last_profile_type = "originatee"
            caller.set_var("signal_bond", w.uuid)
            caller.set_var("originate_signal_bond", None)
        return True, cause, winner, legs
    return False, cause, None, legs


def handle_cause(ch: Channel, cause: str) -> None:
    """switch_channel_handle_cause: continue_on_fail / failure_causes, else hang up."""
    if ch.down():
        return
    if cause != "ATTENDED_TRANSFER":
        cof = ch.get_var("continue_on_fail")
        fc = ch.get_var("failure_causes")
        code = str(CAUSES.get(cause, ""))

        def listed(spec: str) -> bool:
            items = [x.strip().lower() for x in separate_string(spec, ",")]
            return cause.lower() in items or code in items

        if cof is not None or fc is not None:
            if fc is not None and not listed(fc):
                return
            if cof is not None:
                if is_true(cof) or listed(cof):
                    return
        elif cause in ("NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL"):
            return
    if "TRANSFER" not in ch.flags and ch.state != "CS_ROUTING":
        ch.hangup(cause)


@app("bridge")
def bridge_app(ch: Channel, arg: str | None) -> None:
    """mod_dptools ``bridge`` (registered into ``apps.APPS`` when this module is imported)."""
    if not arg:
        return
    # a channel's switch is the whole FakeFreeSwitch: dialling needs its phones and legs too
    result = originate(cast(DialSwitch, ch.fs), ch, arg)
    if not result.ok or result.winner is None:
        ch.set_var("originate_failed_cause", result.cause)
        handle_cause(ch, result.cause)
        return
    multi_threaded_bridge(ch, result.winner)


def multi_threaded_bridge(caller: Channel, leg: Leg) -> None:
    """switch_ivr_multi_threaded_bridge: talk until one side hangs up."""
    peer = leg.channel
    assert peer is not None
    peer.originator = caller.profile.clone()
    peer.last_profile_type = "originator"
    caller.flags |= {"BRIDGE_ORIGINATOR", "BRIDGED"}
    peer.flags.add("BRIDGED")
    peer.set_var("call_uuid", caller.uuid)
    ts = now_us()
    caller.profile.times.bridged = ts
    peer.profile.times.bridged = ts
    a_b = [("Bridge-A-Unique-ID", caller.uuid), ("Bridge-B-Unique-ID", peer.uuid)]
    caller.fire("CHANNEL_BRIDGE", before=a_b)
    caller.set_var("bridge_to", peer.uuid)
    peer.set_var("bridge_to", caller.uuid)
    caller.set_var("last_bridge_to", peer.uuid)
    peer.set_var("last_bridge_to", caller.uuid)
    caller.set_var("bridge_channel", peer.name)
    caller.set_var("bridge_uuid", peer.uuid)
    caller.set_var("signal_bond", peer.uuid)
    peer.set_var("bridge_channel", caller.name)
    peer.set_var("bridge_uuid", caller.uuid)
    peer.set_var("signal_bond", caller.uuid)
    if peer.answered:
        caller.set_var("last_sent_callee_id_name", peer.profile.callee_id_name)
        caller.set_var("last_sent_callee_id_number", peer.profile.callee_id_number)
        peer.set_var("last_sent_callee_id_name", caller.profile.caller_id_name)
        peer.set_var("last_sent_callee_id_number", caller.profile.caller_id_number)
    peer.state = peer.running_state = "CS_EXCHANGE_MEDIA"
    leg.bridged_to = caller.uuid
    leg.note("bridged", caller.uuid)
    if caller.call is not None:
        caller.call.bridged_leg = leg
    caller.hear("bridged", peer.uuid)
    peer.hooks.append(lambda ch, what, detail: caller.kick())
    while True:
        caller.sig.clear()
        if not caller.alive() or peer.down():
            break
        if caller.private_count():
            parse_next_event(caller)
            if caller.ready() and peer.up():
                caller.hear("bridged", peer.uuid)
            continue
        if caller.has_dtmf():
            digit = caller.dequeue_dtmf()
            leg.note("dtmf_from_caller", digit or "")
            continue
        if peer.has_dtmf():
            digit = peer.dequeue_dtmf()
            caller.note("dtmf_from_agent", digit or "")
            caller.hear("dtmf", digit)
            continue
        caller.wait_frame()
    caller.flags.discard("BRIDGE_ORIGINATOR")
    if peer.up() and caller.down():
        peer.hangup("NORMAL_CLEARING" if peer.answered else "ORIGINATOR_CANCEL")
    elif peer.up() and not caller.ready():
        peer.hangup("NORMAL_CLEARING" if peer.answered else "ORIGINATOR_CANCEL")
    caller.set_var("bridge_to", None)
    caller.flags.discard("BRIDGED")
    peer.flags.discard("BRIDGED")
    if caller.hangup_cause:
        peer.set_var("bridge_hangup_cause", caller.hangup_cause)
    if peer.hangup_cause:
        caller.set_var("bridge_hangup_cause", peer.hangup_cause)
    peer.set_var("call_uuid", peer.uuid)
    caller.fire("CHANNEL_UNBRIDGE", before=a_b)
    leg.bridged_to = None
    if caller.call is not None and caller.call.bridged_leg is leg:
        caller.call.bridged_leg = None
    if caller.up():
        caller.hear("silence")
    if "TRANSFER" in caller.flags:
        return
    cause = peer.hangup_cause or "NORMAL_CLEARING"
    if cause == "NONE":
        cause = "NORMAL_CLEARING"
    hup = caller.get_var("hangup_after_bridge")
    if not peer.answered:
        handle_cause(caller, cause)
    if hup is not None and hup.lower() == "explicit":
        caller.hangup(cause)
    if caller.up() and peer.answered and is_true(hup):
        if not is_true(caller.get_var("park_after_bridge")):
            caller.hangup(cause)
