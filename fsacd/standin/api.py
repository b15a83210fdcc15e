"""API commands (``api``/``bgapi``), with mod_commands' replies."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Protocol

from .apps import inline_apps, transfer
from .bridge import originate
from .causes import str2cause
from .channel import Channel
from .fsstrings import atoi, separate_string
from .listener import Listener
from .phones import DialSwitch

VERSION = "1.11.1-release git c2c5964 2026-05-26 20:41:26Z 64bit"

SHOW_COLUMNS = (
    "uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,application,"
    "application_data,dialplan,context,read_codec,read_rate,read_bit_rate,write_codec,write_rate,"
    "write_bit_rate,secure,hostname,presence_id,presence_data,accountcode,callstate,callee_name,"
    "callee_num,callee_direction,call_uuid,sent_callee_name,sent_callee_num,initial_cid_name,"
    "initial_cid_num,initial_ip_addr,initial_dest,initial_dialplan,initial_context"
).split(",")

Handler = Callable[[str | None], str]


class ApiSwitch(DialSwitch, Protocol):
    """The switch (a FakeFreeSwitch) as API commands see it: all channels, session counts."""

    all_channels: dict[str, Channel]
    recordings_dir: str
    started_at: float
    session_count: int
    peak: int
    modules: set[str]
    files: set[str]
    local_streams: dict[str, str]
    socket_target: tuple[str, int]
    socket_arg: str


class Api:
    """Runs API commands against a FakeFreeSwitch (the ``api`` of listener.SocketSwitch)."""

    def __init__(self, fs: ApiSwitch) -> None:
        self.fs = fs
        self.commands: dict[str, Handler] = {
            "status": self.status,
            "version": lambda arg: f"FreeSWITCH Version {VERSION}\n",
            "hostname": lambda arg: self.fs.hostname,
            "echo": lambda arg: arg or "",
            "global_getvar": self.global_getvar,
            "originate": self.originate,
            "uuid_kill": self.uuid_kill,
            "uuid_exists": self.uuid_exists,
            "uuid_break": self.uuid_break,
            "uuid_record": self.uuid_record,
            "uuid_getvar": self.uuid_getvar,
            "uuid_setvar": self.uuid_setvar,
            "uuid_answer": self.uuid_answer,
            "uuid_transfer": self.uuid_transfer,
            "uuid_recv_dtmf": self.uuid_recv_dtmf,
            "uuid_send_dtmf": self.uuid_send_dtmf,
            "hupall": self.hupall,
            "show": self.show,
            "sofia": self.sofia,
            "module_exists": self.module_exists,
            "file_exists": self.file_exists,
            "local_stream": self.local_stream,
            "xml_locate": self.xml_locate,
        }

    def run(self, name: str, arg: str | None, listener: Listener | None = None) -> str:
        """The reply text; unknown commands give mod_event_socket's error."""
        handler = self.commands.get(name)
        if handler is None:
            return f"-ERR {name} Command not found!\n"
        return handler(arg)

    # --- commands -------------------------------------------------------------------------

    def global_getvar(self, arg: str | None) -> str:
        """A global variable (no trailing newline, as mod_commands writes it)."""
        values = {
            "core_uuid": self.fs.core_uuid,
            "hostname": self.fs.hostname,
            "recordings_dir": self.fs.recordings_dir,
            "sounds_dir": self.fs.sounds_dir,
        }
        return values.get((arg or "").strip(), "")

    def status(self, arg: str | None) -> str:
        up = time.time() - self.fs.started_at
        secs = int(up)
        parts = [
            (secs // (365 * 86400), "year"),
            (secs // 86400 % 365, "day"),
            (secs // 3600 % 24, "hour"),
            (secs // 60 % 60, "minute"),
            (secs % 60, "second"),
            (int(up * 1000) % 1000, "millisecond"),
            (int(up * 1_000_000) % 1000, "microsecond"),
        ]
        uptime = ", ".join(f"{n} {w}{'' if n == 1 else 's'}" for n, w in parts)
        live = len([c for c in self.fs.all_channels.values() if c.up()])
        total = self.fs.session_count
        return (
            f"UP {uptime}\n"
            f"FreeSWITCH (Version {VERSION}) is ready\n"
            f"{total} session(s) since startup\n"
            f"{live} session(s) - peak {self.fs.peak}, last 5min {self.fs.peak} \n"
            f"0 session(s) per Sec out of max 100, peak 0, last 5min 0 \n"
            "2000 session(s) max\n"
            "min idle cpu 0.00/99.00\n"
            "Current Stack Size/Max 240K/8192K\n"
        )

    def module_exists(self, arg: str | None) -> str:
        """mod_commands: ``true``/``false``, nothing at all without an argument."""
        if not arg:
            return ""
        return "true" if arg.strip() in self.fs.modules else "false"

    def file_exists(self, arg: str | None) -> str:
        return "true" if arg and arg in self.fs.files else "false"

    def local_stream(self, arg: str | None) -> str:
        """mod_local_stream's ``show NAME`` (the other sub-commands are not modelled)."""
        argv = (arg or "").split()
        if "mod_local_stream" not in self.fs.modules:
            return "-ERR local_stream Command not found!\n"
        if not argv:
            return "-USAGE: <show|start|reload|stop|hup> <local_stream_name>\n"
        if argv[0].lower() != "show":
            return ""  # mod_local_stream writes nothing: "-ERR no reply"
        if len(argv) < 2:
            return "".join(f"{n},{loc}\n" for n, loc in self.fs.local_streams.items())
        location = self.fs.local_streams.get(argv[1])
        if location is None:
            return f"-ERR Cannot locate local_stream {argv[1]}!\n"
        return (
            f"{argv[1]}\n  location: {location}\n  channels: 1\n  rate:     8000\n"
            "  interval: 20\n  samples:  160\n  prebuf:   65536\n  timer:    soft\n"
            "  total:    0\n  shuffle:  false\n  ready:    true\n  stopped:  false\n"
            "  reloading: false\n"
        )

    def xml_locate(self, arg: str | None) -> str:
        """``xml_locate dialplan``: the stand-in's routing as XML: the 50xx callers go to
        ``socket <socket_target> <socket_arg>`` (its other sections are not modelled)."""
        if (arg or "").split()[:1] != ["dialplan"]:
            return "can't find anything\n"
        host, port = self.fs.socket_target
        return (
            '<section name="dialplan" description="Regex/XML Dialplan">\n'
            '    <context name="default">\n'
            '      <extension name="fsacd">\n'
            '          <condition field="destination_number" expression="^(50\\d\\d)$">\n'
            f'              <action application="socket" data="{host}:{port} '
            f'{self.fs.socket_arg}"></action>\n\n'
            "    </condition>\n\n  </extension>\n\n    </context>\n</section>\n"
        )

    def _locate(self, uid: str) -> Channel | None:
        return self.fs.locate(uid)

    def originate(self, arg: str | None) -> str:
        usage = (
            "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] "
            "[<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n"
        )
        argv = separate_string(arg, " ", 10)
        if len(argv) < 2:
            return usage
        url, exten = argv[0], argv[1]
        timeout = atoi(argv[6]) if len(argv) > 6 else 0
        result = originate(self.fs, None, url, timeout)
        if not result.ok or result.winner is None or result.winner.channel is None:
            return f"-ERR {result.cause}\n"
        ch = result.winner.channel
        ch.flip_cid()
        if exten.startswith("&") and len(exten) > 1:
            app_name = exten[1:]
            app_arg: str | None = None
            if "(" in app_name:
                app_name, _, rest = app_name.partition("(")
                app_arg = rest.split(")")[0]
            elif " " in app_name:
                app_name, _, app_arg = app_name.partition(" ")
            ch.extension.append((app_name, app_arg or None))
        elif len(argv) > 2 and argv[2] == "inline":
            ch.extension.extend(inline_apps(exten))
        else:
            apps = self.fs.route(ch, exten)
            if apps is None:
                ch.hangup("NO_ROUTE_DESTINATION")
            else:
                ch.extension.extend(apps)
        ch.kick()
        return f"+OK {ch.uuid}\n"

    def uuid_kill(self, arg: str | None) -> str:
        if not arg:
            return "-USAGE: <uuid> [cause]\n"
        uid, _, cause = arg.partition(" ")
        ch = self._locate(uid)
        if ch is None:
            return "-ERR No such channel!\n"
        ch.hangup(str2cause(cause) if cause else "NORMAL_CLEARING")
        return "+OK\n"

    def uuid_exists(self, arg: str | None) -> str:
        return "true" if arg and self._locate(arg) is not None else "false"

    def uuid_break(self, arg: str | None) -> str:
        if not arg:
            return "-USAGE: <uuid> [all]\n"
        uid, _, flag = arg.partition(" ")
        ch = self._locate(uid)
        if ch is None:
            return "-ERR No such channel!\n"
        targets = [ch]
        if "both" in flag and (partner := ch.get_var("bridge_to")):
            other = self._locate(partner)
            if other is not None:
                targets.append(other)
        for t in targets:
            if "all" in flag:
                t.private_queue.clear()
            if "BROADCAST" in t.flags:
                t.flags |= {"STOP_BROADCAST", "BREAK"}
            else:
                t.flags.add("BREAK")
            t.note("break", flag)
            t.kick()
        return "+OK\n"

    def uuid_record(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 5)
        if len(argv) < 3:
            return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"
        ch = self._locate(argv[0])
        if ch is None:
            return "-ERR Cannot locate session!\n"
        action, path = argv[1].lower(), argv[2]
        if action == "start":
            ch.start_recording(path)
            return "+OK Success\n"
        if action == "stop":
            paths = list(ch.recordings) if path == "all" else [path]
            ok = False
            for p in paths:
                ok = ch.stop_recording(p) or ok
            return "+OK Success\n" if ok else "-ERR Cannot stop record session!\n"
        if action in ("mask", "unmask", "pause", "resume"):
            if path in ch.recordings or path == "all":
                ch.note(f"record_{action}", path)
                return "+OK Success\n"
            what = {"mask": "mask", "unmask": "unmask", "pause": "pause", "resume": "resume"}
            return f"-ERR Cannot {what[action]} recording session!\n"
        return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"

    def uuid_getvar(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 4)
        if len(argv) < 2 or not argv[0]:
            return "-USAGE: <uuid> <var>\n"
        ch = self._locate(argv[0])
        if ch is None:
            return "-ERR No such channel!\n"
        value = ch.get_var(argv[1])
        return value if value is not None else "_undef_"

    def uuid_setvar(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 3)
        if len(argv) not in (2, 3) or not argv[0]:
            return "-USAGE: <uuid> <var> [value]\n"
        ch = self._locate(argv[0])
        if ch is None:
            return "-ERR No such channel!\n"
        ch.set_var(argv[1], argv[2] if len(argv) == 3 else None)
        return "+OK\n"

    def uuid_answer(self, arg: str | None) -> str:
        ch = self._locate((arg or "").split(" ")[0])
        if ch is None:
            return "-ERR No such channel!\n"
        ch.answer()
        return "+OK\n"

    def uuid_transfer(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 5)
        if len(argv) < 2:
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        ch = self._locate(argv[0])
        if ch is None:
            return "-ERR No such channel!\n"
        rest = argv[2:] if argv[1].startswith("-") and len(argv) > 2 else argv[1:]
        transfer(ch, rest[0], rest[1] if len(rest) > 1 else None)
        return "+OK\n"

    def uuid_recv_dtmf(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 2)
        if len(argv) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        ch = self._locate(argv[0])
        if ch is None:
            return "-ERR Cannot locate session!\n"
        ch.queue_dtmf(argv[1], source="APP")
        return f"+OK {argv[0]} received DTMF {argv[1]}.\n"

    def uuid_send_dtmf(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 2)
        if len(argv) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        ch = self._locate(argv[0])
        if ch is None:
            return "-ERR No such channel!\n"
        ch.note("dtmf_out", argv[1])
        return "+OK Success\n"

    def hupall(self, arg: str | None) -> str:
        cause = str2cause(arg.split(" ")[0]) if arg else "MANAGER_REQUEST"
        for ch in list(self.fs.all_channels.values()):
            if ch.up():
                ch.hangup(cause)
        return "+OK hupall\n"

    def show(self, arg: str | None) -> str:
        words = (arg or "").split()
        if not words or words[0] not in ("channels", "calls"):
            return "-USAGE: channels|calls [as xml|json|delim <x>] [count]\n"
        rows = [self._row(ch) for ch in self.fs.all_channels.values() if ch.up()]
        if "count" in words:
            return f"\n{len(rows)} total.\n"
        if len(words) >= 3 and words[1] == "as" and words[2] == "json":
            if not rows:
                return '{"row_count": 0}\n'
            payload = {"row_count": len(rows), "rows": rows}
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        if not rows:
            return "\n0 total.\n"
        lines = [",".join(SHOW_COLUMNS)]
        lines += [",".join(r[c] for c in SHOW_COLUMNS) for r in rows]
        return "\n".join(lines) + f"\n\n{len(rows)} total.\n"

    def _row(self, ch: Channel) -> dict[str, str]:
        p = ch.profile
        created = p.times.created / 1e6
        return {
            "uuid": ch.uuid,
            "direction": ch.direction,
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)),
            "created_epoch": str(int(created)),
            "name": ch.name,
            "state": ch.running_state,
            "cid_name": p.caller_id_name,
            "cid_num": p.caller_id_number,
            "ip_addr": "",
            "dest": p.destination_number,
            "application": ch.get_var("current_application") or "",
            "application_data": ch.get_var("current_application_data") or "",
            "dialplan": "XML",
            "context": p.context,
            "read_codec": "L16",
            "read_rate": "8000",
            "read_bit_rate": "128000",
            "write_codec": "L16",
            "write_rate": "8000",
            "write_bit_rate": "128000",
            "secure": "",
            "hostname": self.fs.hostname,
            "presence_id": ch.get_var("presence_id") or "",
            "presence_data": ch.get_var("presence_data") or "",
            "accountcode": ch.get_var("accountcode") or "",
            "callstate": ch.callstate,
            "callee_name": p.callee_id_name,
            "callee_num": p.callee_id_number,
            "callee_direction": "",
            "call_uuid": ch.get_var("call_uuid") or ch.uuid,
            "sent_callee_name": ch.get_var("last_sent_callee_id_name") or "",
            "sent_callee_num": ch.get_var("last_sent_callee_id_number") or "",
            "initial_cid_name": p.orig_caller_id_name,
            "initial_cid_num": p.orig_caller_id_number,
            "initial_ip_addr": "",
            "initial_dest": p.destination_number,
            "initial_dialplan": "XML",
            "initial_context": p.context,
        }

    def sofia(self, arg: str | None) -> str:
        if not arg or not arg.startswith("status"):
            return "-ERR Usage: sofia status\n"
        bar = "=" * 97
        return (
            f"{'Name':>25}\t{'Type':>7}\t{'Data':>42}\tState\n{bar}\n"
            f"{'internal':>25}\t{'profile':>7}\t{'sip:mod_sofia@' + self.fs.ipv4 + ':5060':>42}"
            f"\tRUNNING (0)\n{bar}\n1 profile 0 aliases\n"
        )
