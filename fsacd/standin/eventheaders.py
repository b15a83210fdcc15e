"""Event objects with FreeSWITCH's header sets and order, and their wire serialisation.

An event is an ordered list of headers: the core headers FreeSWITCH adds when it creates an
event (``Event-Name`` ... ``Event-Sequence``), then what the firing code adds (channel data,
``Application`` ...). Which events carry ``variable_*`` headers and the calling file/function/line
each event reports come from FreeSWITCH 1.11's source, so the stand-in's events have the same
header names in the same order as the recorded transcripts.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from fsacd.esl.framing import encode_event_plain_lines, encode_frame, plain_line

from .chanvars import Value, array_string


class EventSource(Protocol):
    """What the core headers take from the switch (FakeFreeSwitch): identity and sequence."""

    core_uuid: str
    hostname: str
    ipv4: str
    ipv6: str

    def next_sequence(self) -> int: ...


#: Every event name FreeSWITCH knows (switch_event.c EVENT_NAMES), in enum order.
EVENT_NAMES = (
    "CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_ANSWER "
    "CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD "
    "CHANNEL_UNHOLD CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA "
    "CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK CHANNEL_APPLICATION CHANNEL_ORIGINATE "
    "CHANNEL_UUID API LOG INBOUND_CHAN OUTBOUND_CHAN STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK "
    "NOTALK SESSION_CRASH MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE PRESENCE_IN NOTIFY_IN "
    "PRESENCE_OUT PRESENCE_PROBE MESSAGE_WAITING MESSAGE_QUERY ROSTER CODEC BACKGROUND_JOB "
    "DETECTED_SPEECH DETECTED_TONE PRIVATE_COMMAND HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE "
    "EXE_SCHEDULE RE_SCHEDULE RELOADXML NOTIFY PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE "
    "SEND_MESSAGE RECV_MESSAGE REQUEST_PARAMS CHANNEL_DATA GENERAL COMMAND SESSION_HEARTBEAT "
    "CLIENT_DISCONNECTED SERVER_DISCONNECTED SEND_INFO RECV_INFO RECV_RTCP_MESSAGE "
    "SEND_RTCP_MESSAGE CALL_SECURE NAT RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP "
    "CALL_UPDATE FAILURE SOCKET_DATA MEDIA_BUG_START MEDIA_BUG_STOP CONFERENCE_DATA_QUERY "
    "CONFERENCE_DATA CALL_SETUP_REQ CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE TEXT "
    "SHUTDOWN_REQUESTED CERT_RELOAD ALL"
).split()

#: Events that carry ``variable_*`` headers (switch_channel_event_set_extended_data).
EXTENDED = frozenset(
    "CHANNEL_CREATE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_ANSWER CHANNEL_PARK CHANNEL_UNPARK "
    "CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_HANGUP "
    "CHANNEL_HANGUP_COMPLETE REQUEST_PARAMS CHANNEL_DATA CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE "
    "CHANNEL_DESTROY SESSION_HEARTBEAT API RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP "
    "CALL_UPDATE MEDIA_BUG_START MEDIA_BUG_STOP CHANNEL_HOLD CHANNEL_UNHOLD TEXT CUSTOM".split()
)

#: (Event-Calling-File, Event-Calling-Function, Event-Calling-Line-Number) per event site.
CALLING: dict[str, tuple[str, str, int]] = {
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", 2018),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1002),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1213),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2949),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2972),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3848),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", 3507),
    "CHANNEL_PROGRESS_MEDIA": (
        "switch_channel.c",
        "switch_channel_perform_mark_pre_answered",
        3562,
    ),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3447),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", 2409),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", 302),
    "CHANNEL_HANGUP_COMPLETE": (
        "switch_core_state_machine.c",
        "switch_core_session_reporting_state",
        943,
    ),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", 626),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", 632),
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", 768),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", 1588),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", 678),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1689),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1879),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", 1569),
    "HEARTBEAT": ("switch_core.c", "send_heartbeat", 95),
    "PRIVATE_COMMAND": ("switch_ivr.c", "switch_ivr_parse_next_event", 805),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", 1482),
    "RECORD_STOP": ("switch_ivr_async.c", "record_callback", 1241),
    "CUSTOM": ("mod_event_socket.c", "parse_command", 2264),
}


@lru_cache(maxsize=32768)
def _plain_str_line(header: tuple[str, str]) -> str:
    return plain_line(*header)


def _plain_line(header: tuple[str, Value]) -> str:
    """One encoded ``name: value`` line (a channel's headers repeat in all its events)."""
    if isinstance(header[1], str):
        return _plain_str_line(header)
    return plain_line(header[0], array_string(header[1]))


@lru_cache(maxsize=8192)
def _lower(name: str) -> str:
    """A header name without case (the same few hundred names in every event)."""
    return name.lower()


@dataclass
class Event:
    """One event: ordered headers (values str, or list for ARRAY variables) and a body."""

    name: str
    headers: list[tuple[str, Value]] = field(default_factory=list)
    body: str | None = None

    def get(self, name: str) -> str | None:
        """First header with this name (case-insensitive), as FreeSWITCH looks it up."""
        index = self.__dict__.get("_index")
        if index is None or self.__dict__.get("_indexed") != len(self.headers):
            # every listener asks: indexed once per event (reversed: the first header of a
            # name wins, as FreeSWITCH's lookup finds it)
            low = _lower
            index = {low(k): v for k, v in reversed(self.headers)}
            self.__dict__["_index"] = index
            self.__dict__["_indexed"] = len(self.headers)
        v = index.get(_lower(name))
        return None if v is None else array_string(v)

    @property
    def unique_id(self) -> str | None:
        return self.get("Unique-ID")

    def plain_headers(self) -> list[tuple[str, str]]:
        return [(k, array_string(v)) for k, v in self.headers]

    def encode(self, fmt: str) -> bytes:
        """The frame FreeSWITCH writes for this event in ``plain`` or ``json`` format (built
        once per format: every listener that gets the event gets the same bytes)."""
        cache = self.__dict__.setdefault("_encoded", {})
        key = (fmt, id(self.headers), len(self.headers), self.body)
        data = cache.get(key)
        if data is None:
            data = cache[key] = self._encode(fmt)
        return data

    def _encode(self, fmt: str) -> bytes:
        if fmt == "json":
            obj: dict[str, object] = {}
            for k, v in self.headers:
                obj[k] = list(v) if isinstance(v, list) else v
            if self.body is not None:
                obj["Content-Length"] = str(len(self.body.encode("utf-8")))
                obj["_body"] = self.body
            data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
            return encode_frame([("Content-Type", "text/event-json")], data)
        return encode_event_plain_lines(list(map(_plain_line, self.headers)), self.body)


def date_headers(ts: float) -> list[tuple[str, str]]:
    local, gmt = _date_strings(int(ts))
    return [
        ("Event-Date-Local", local),
        ("Event-Date-GMT", gmt),
        ("Event-Date-Timestamp", str(int(ts * 1_000_000))),
    ]


@lru_cache(maxsize=4)
def _date_strings(second: int) -> tuple[str, str]:
    """The two per-second date headers (formatted once per second, not once per event)."""
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)),
        email.utils.formatdate(second, usegmt=True),
    )


def core_headers(fs: EventSource, name: str) -> list[tuple[str, Value]]:
    """The headers ``switch_event_prep_for_delivery`` adds, in order."""
    file, func, line = CALLING.get(name, ("switch_event.c", "switch_event_fire_detailed", 0))
    return [
        ("Event-Name", name),
        ("Core-UUID", fs.core_uuid),
        ("FreeSWITCH-Hostname", fs.hostname),
        ("FreeSWITCH-Switchname", fs.hostname),
        ("FreeSWITCH-IPv4", fs.ipv4),
        ("FreeSWITCH-IPv6", fs.ipv6),
        *date_headers(time.time()),
        ("Event-Calling-File", file),
        ("Event-Calling-Function", func),
        ("Event-Calling-Line-Number", str(line)),
        ("Event-Sequence", str(fs.next_sequence())),
    ]


def make_event(
    fs: EventSource,
    name: str,
    headers: Iterable[tuple[str, Value]] = (),
    body: str | None = None,
) -> Event:
    """A non-channel event (HEARTBEAT, BACKGROUND_JOB ...). Empty values are left out."""
    hs = core_headers(fs, name)
    hs.extend((k, v) for k, v in headers if v is not None and v != "")
    return Event(name, hs, body)


def event_type(name: str) -> str | None:
    """``switch_name_event``: the canonical name, accepting a ``SWITCH_EVENT_`` prefix."""
    up = name.upper()
    if len(up) > 13 and up[13:] in EVENT_NAMES:
        return up[13:]
    return up if up in EVENT_NAMES else None
