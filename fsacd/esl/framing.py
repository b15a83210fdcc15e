"""ESL framing as pure functions: split a byte stream into frames, parse and build them.

An event-socket frame is a block of ``Name: value`` header lines ended by an empty line,
followed by ``Content-Length`` bytes of body when that header is present. The same framing
carries FreeSWITCH's replies and events and the controller's commands, so one parser serves
fsacd's client side and the FreeSWITCH stand-in's server side.

Values inside event bodies (and the channel data of the ``connect`` reply) are URL-encoded by
FreeSWITCH. A value can carry an encoded newline (``%0A``): lines are split first and each
value is decoded afterwards, never the other way round. An event carries every channel
variable (some hundred headers) and a controller reads a handful: :class:`EventHeaders` keeps
the values as they came and decodes each one when it is first read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote

#: Largest header block we accept before its terminating empty line.
MAX_HEADER_BYTES = 256 * 1024
#: Largest body we accept (FreeSWITCH's own MAX_CONTENT_LENGTH is far below this).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Largest body on the outbound socket, where anyone who can connect speaks first: a call's
#: events and its channel data are a few kB to some hundred kB.
OUTBOUND_MAX_BODY_BYTES = 2 * 1024 * 1024

#: Characters FreeSWITCH's switch_url_encode escapes (SWITCH_URL_UNSAFE), besides controls.
URL_UNSAFE = '\r\n #%&+:;<=>?@[\\]^`{|}"'
_HEX = "0123456789ABCDEFabcdef"


class FramingError(ValueError):
    """The byte stream is not valid event-socket framing."""


@dataclass
class Frame:
    """One frame: outer headers (raw, not URL-decoded) and the body bytes.

    ``command`` is the first line of a command frame (server side, ``commands=True``).
    """

    headers: dict[str, str]
    body: bytes = b""
    raw_header_names: list[str] = field(default_factory=list)
    command: str | None = None

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    def decoded_headers(self) -> dict[str, str]:
        """Outer headers with URL-decoded values (the ``connect`` reply carries channel data)."""
        return {k: url_decode(v) for k, v in self.headers.items()}


def url_decode(value: str) -> str:
    """Decode a FreeSWITCH URL-encoded value (``%XX`` only; ``+`` stays a plus sign)."""
    return unquote(value, errors="replace")


def url_encode(value: str) -> str:
    """Encode a value the way FreeSWITCH's ``switch_url_encode`` does (not double-encoding).

    Bytes outside printable ASCII and the characters of ``URL_UNSAFE`` become ``%XX``; an
    existing ``%XX`` escape is kept as it is, which is FreeSWITCH's own behaviour.
    """
    if _URL_SAFE.fullmatch(value):  # most values (names, uuids, numbers): nothing to escape
        return value
    return _url_encode_slow(value)


#: A value made only of printable ASCII outside URL_UNSAFE (FreeSWITCH leaves it as it is).
_URL_SAFE = re.compile("[^" + re.escape(URL_UNSAFE) + "\\x00-\\x1f\\x7f-\\U0010ffff]*")


@lru_cache(maxsize=4096)
def _url_encode_slow(value: str) -> str:
    raw = value.encode("utf-8")
    out: list[str] = []
    n = len(raw)
    for i, b in enumerate(raw):
        ch = chr(b)
        if ch == "%" and i + 2 < n and chr(raw[i + 1]) in _HEX and chr(raw[i + 2]) in _HEX:
            out.append(ch)
        elif b < 0x20 or b > 0x7E or ch in URL_UNSAFE:
            out.append(f"%{b:02X}")
        else:
            out.append(ch)
    return "".join(out)


def parse_header_block(block: bytes, decode: bool = False) -> tuple[dict[str, str], list[str]]:
    """Parse ``Name: value`` lines into a dict (last one wins) and the names in order.

    Lines are split before any decoding. ``decode=True`` URL-decodes each value afterwards.
    A line without a colon is a framing error. CR before LF is tolerated.
    """
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FramingError(f"header block is not UTF-8: {exc}") from None
    headers, names = _split_lines(text)
    if decode:
        headers = {k: url_decode(v) for k, v in headers.items()}
    return headers, names


def _split_lines(text: str) -> tuple[dict[str, str], list[str]]:
    """The lines of a header block as raw (undecoded) values and the names in order."""
    headers: dict[str, str] = {}
    names: list[str] = []
    lines = text.split("\n")
    if "\r" in text:
        lines = [line.rstrip("\r") for line in lines]
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            if not line:
                continue
            raise FramingError(f"header line without a name and colon: {line[:80]!r}")
        headers[name] = value.lstrip(" ")
        names.append(name)
    return headers, names


def _content_length(headers: Mapping[str, str], limit: int = MAX_BODY_BYTES) -> int:
    raw = None
    for k, v in headers.items():
        if k.lower() == "content-length":
            raw = v
    if raw is None:
        return 0
    raw = raw.strip()
    if not raw.isdigit():
        raise FramingError(f"bad Content-Length {raw[:40]!r}")
    length = int(raw)
    if length > limit:
        raise FramingError(f"Content-Length {length} is larger than {limit}")
    return length


def _find_header_end(buf: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Index of the empty line ending a header block and the length of that terminator."""
    i = buf.find(b"\n\n", start)
    # a CRLF terminator only matters if it starts before the first LF LF: look no further
    # (a buffer holding many frames is not scanned to its end for each of them)
    j = buf.find(b"\r\n\r\n", start) if i == -1 else buf.find(b"\r\n\r\n", start, i + 3)
    if j != -1 and (i == -1 or j < i):
        return j, 4
    return i, 2


def _parse_block(block: bytes, commands: bool) -> tuple[str | None, dict[str, str], list[str]]:
    """Headers of a frame's block; with ``commands`` its first line is the command.

    FreeSWITCH reads a command's first line whole (it may hold a colon, as in a SIP URI) and
    the ``Name: value`` lines after it as headers.
    """
    command = None
    if commands:
        first, _, block = block.partition(b"\n")
        try:
            command = first.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FramingError(f"command line is not UTF-8: {exc}") from None
    headers, names = parse_header_block(block)
    return command, headers, names


def split_frames(buf: bytes, *, commands: bool = False) -> tuple[list[Frame], bytes]:
    """Cut as many whole frames as ``buf`` holds; return them and the unconsumed rest.

    Pure: the same input always gives the same output, whatever the TCP segmentation was
    (feed the rest back with more bytes). Blank lines between frames are skipped, as
    FreeSWITCH does. ``commands=True`` parses what a client sends (the server side): the
    first line of each frame is its :attr:`Frame.command`.
    """
    frames: list[Frame] = []
    pos = 0
    n = len(buf)
    while pos < n:
        # skip stray empty lines between frames
        while pos < n and buf[pos : pos + 1] in (b"\n", b"\r"):
            pos += 1
        if pos >= n:
            break
        end, term = _find_header_end(buf, pos)
        if end == -1:
            if n - pos > MAX_HEADER_BYTES:
                raise FramingError(f"header block longer than {MAX_HEADER_BYTES} bytes")
            break
        if end - pos > MAX_HEADER_BYTES:
            raise FramingError(f"header block longer than {MAX_HEADER_BYTES} bytes")
        command, headers, names = _parse_block(bytes(buf[pos:end]), commands)
        length = _content_length(headers)
        body_start = end + term
        if n - body_start < length:
            break
        body = bytes(buf[body_start : body_start + length])
        frames.append(Frame(headers, body, names, command))
        pos = body_start + length
    return frames, bytes(buf[pos:])


class FrameReader:
    """Incremental frame cutter for a socket reader; gives the same frames as :func:`split_frames`.

    Work per ``feed`` is proportional to the new bytes, not to the whole buffer: a peer that
    trickles a large frame one byte at a time cannot make the reader quadratic.
    """

    def __init__(self, *, commands: bool = False, max_body: int = MAX_BODY_BYTES) -> None:
        self._commands = commands
        self._max_body = max_body  # a larger Content-Length fails before its body is read
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the header block
        self._head: tuple[str | None, dict[str, str], list[str], int, int] | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete (raises :class:`FramingError`)."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        while True:
            if self._head is None:
                skip = 0
                while skip < len(buf) and buf[skip] in (10, 13):
                    skip += 1
                if skip:
                    del buf[:skip]
                    self._scan = 0
                if not buf:
                    return frames
                end, term = _find_header_end(buf, self._scan)
                if end == -1:
                    if len(buf) > MAX_HEADER_BYTES:
                        raise FramingError(f"header block longer than {MAX_HEADER_BYTES} bytes")
                    self._scan = max(0, len(buf) - 3)
                    return frames
                if end > MAX_HEADER_BYTES:
                    raise FramingError(f"header block longer than {MAX_HEADER_BYTES} bytes")
                command, headers, names = _parse_block(bytes(buf[:end]), self._commands)
                length = _content_length(headers, self._max_body)
                self._head = (command, headers, names, end + term, length)
            command, headers, names, body_start, length = self._head
            if len(buf) - body_start < length:
                return frames
            body = bytes(buf[body_start : body_start + length])
            frames.append(Frame(headers, body, names, command))
            del buf[: body_start + length]
            self._head = None
            self._scan = 0

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buf)


class EventHeaders(Mapping[str, str]):
    """An event's headers, read-only: values are kept as received (URL-encoded) and each is
    decoded the first time it is read. :meth:`raw` gives a value as it came."""

    __slots__ = ("_raw", "_decoded")

    def __init__(self, raw: dict[str, str]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        try:
            return self._decoded[key]
        except KeyError:
            pass
        value = self._raw[key]
        if "%" in value:
            value = unquote(value, errors="replace")
        self._decoded[key] = value
        return value

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if key in self._raw:
            return self[key]
        return default

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def raw(self, key: str) -> str | None:
        """The value as it was received (not URL-decoded), or None."""
        return self._raw.get(key)

    def __repr__(self) -> str:
        return f"EventHeaders({dict(self)!r})"


class ChannelData(Mapping[str, str]):
    """Headers kept as one string of ``Name: value`` lines (values as received, URL-encoded),
    each value decoded when read: a channel's data (the ``connect`` reply).

    It lives as long as the call: as a dict of strings the 100-300 headers of a real channel
    take 15-40 KiB, most of what a caller waiting on hold costs; as one string, the size of
    the text FreeSWITCH sent. A read scans that text (microseconds), fine for the few dozen
    reads a call makes.
    """

    __slots__ = ("_text",)

    def __init__(self, raw: Mapping[str, str]) -> None:
        lines = ["\n"]
        for name, value in raw.items():
            if not name or ":" in name or "\n" in name or "\n" in value:
                raise ValueError(f"not a header line: {name[:40]!r}")
            lines.append(f"{name}: {value}\n")
        self._text = "".join(lines)

    def raw(self, key: str) -> str | None:
        """The value as it was received (not URL-decoded), or None."""
        text = self._text
        at = text.find(f"\n{key}: ")
        if at < 0 or ":" in key:
            return None
        start = at + len(key) + 3
        return text[start : text.index("\n", start)]

    def __getitem__(self, key: str) -> str:
        value = self.raw(key)
        if value is None:
            raise KeyError(key)
        return url_decode(value) if "%" in value else value

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        value = self.raw(key)
        if value is None:
            return default
        return url_decode(value) if "%" in value else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.raw(key) is not None

    def __iter__(self) -> Iterator[str]:
        for line in self._text[1:-1].split("\n"):
            if line:
                yield line.partition(": ")[0]

    def __len__(self) -> int:
        return self._text.count("\n") - 1

    def __repr__(self) -> str:
        return f"ChannelData({dict(self)!r})"


@dataclass
class Event:
    """A parsed event: its headers (URL-decoded when read) and the optional inner body."""

    headers: Mapping[str, str]
    body: str | None = None
    header_names: list[str] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.headers.get("Event-Name")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    def var(self, name: str, default: str | None = None) -> str | None:
        """A channel variable carried by the event (``variable_<name>``)."""
        return self.headers.get("variable_" + name, default)


def parse_event_plain(body: bytes) -> Event:
    """Parse a ``text/event-plain`` body: encoded headers, then an optional inner body.

    Lines are checked and split at once; values are decoded only when read
    (:class:`EventHeaders`).
    """
    end, term = _find_header_end(body)
    if end == -1:
        block, rest = body, b""
    else:
        block, rest = body[:end], body[end + term :]
    raw, names = parse_header_block(block)
    headers = EventHeaders(raw)
    inner: str | None = None
    if "Content-Length" in raw:
        length = _content_length({k: headers[k] for k in raw if k.lower() == "content-length"})
        inner = rest[:length].decode("utf-8", errors="replace")
    elif rest.strip():
        inner = rest.decode("utf-8", errors="replace")
    return Event(headers, inner, names)


def parse_event_json(body: bytes) -> Event:
    """Parse a ``text/event-json`` body; ``_body`` becomes the inner body."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FramingError(f"event-json body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FramingError("event-json body is not an object")
    inner = data.pop("_body", None)
    headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return Event(headers, inner, list(headers))


_UNIQUE_ID = b"\nUnique-ID: "


def event_plain_head_end(body: bytes) -> int:
    """Where the header block of a ``text/event-plain`` body ends (its inner body, if any,
    starts after it): a search bounded by it reads headers only, without a copy."""
    end, _ = _find_header_end(body)
    return len(body) if end == -1 else end


def event_plain_uuid(body: bytes) -> str | None:
    """The ``Unique-ID`` of a ``text/event-plain`` body without parsing it (None if it has
    none): a feed that takes every channel's events drops the others' at this cost.

    Only the header block is searched (an inner body may say anything); a ``Unique-ID``
    is never the first header (``Event-Name`` is), and ``Other-Leg-Unique-ID`` or
    ``Bridge-A-Unique-ID`` do not match (the name starts a line).
    """
    end, _ = _find_header_end(body)
    at = body.find(_UNIQUE_ID, 0, len(body) if end == -1 else end)
    if at == -1:
        return None
    start = at + len(_UNIQUE_ID)
    stop = body.find(b"\n", start)
    value = body[start : len(body) if stop == -1 else stop].rstrip(b"\r")
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    return url_decode(text) if "%" in text else text


def frame_event(frame: Frame) -> Event | None:
    """The event carried by a frame, or None if the frame is not an event."""
    ct = frame.content_type
    if ct == "text/event-plain":
        return parse_event_plain(frame.body)
    if ct == "text/event-json":
        return parse_event_json(frame.body)
    return None


# --- building frames -------------------------------------------------------------------


def _check_line(part: str, what: str) -> str:
    if "\n" in part or "\r" in part:
        raise ValueError(f"{what} must not contain a line break: {part[:60]!r}")
    return part


def encode_command(
    command: str,
    headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    body: str | bytes | None = None,
) -> bytes:
    """Build a command frame. No part but the body may hold a line break.

    A body is sent with its ``Content-Length`` so its bytes can never be read as headers or as
    a next command.
    """
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    lines = [_check_line(command, "command")]
    for name, value in items:
        _check_line(name, "header name")
        if ":" in name:
            raise ValueError(f"header name must not contain a colon: {name!r}")
        lines.append(f"{name}: {_check_line(str(value), f'header {name}')}")
    if body is not None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        if "content-length" not in {k.lower() for k, _ in items}:
            lines.append(f"content-length: {len(data)}")
        return ("\n".join(lines) + "\n\n").encode("utf-8") + data
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_execute(
    app: str,
    arg: str | None = None,
    *,
    event_lock: bool = True,
    uuid: str | None = None,
    event_uuid: str | None = None,
    loops: int | None = None,
) -> bytes:
    """``sendmsg`` that executes one application.

    The argument travels as a ``text/plain`` body with its length, never as a header, so a
    newline in it cannot inject a header or a command. ``event-lock`` is on by default: the
    next application waits until this one is done instead of running nested inside it.
    """
    if not app or not all(c.isalnum() or c in "_-" for c in app):
        raise ValueError(f"invalid application name {app!r}")
    cmd = "sendmsg" if uuid is None else f"sendmsg {uuid}"
    headers: list[tuple[str, str]] = [("call-command", "execute"), ("execute-app-name", app)]
    if event_lock:
        headers.append(("event-lock", "true"))
    if event_uuid:
        headers.append(("event-uuid", event_uuid))
    if loops is not None:
        headers.append(("loops", str(int(loops))))
    if arg is None or arg == "":
        return encode_command(cmd, headers)
    headers.append(("content-type", "text/plain"))
    return encode_command(cmd, headers, arg)


def encode_frame(
    headers: Iterable[tuple[str, str]], body: bytes | str = b"", *, length_first: bool = True
) -> bytes:
    """Server side: build a frame from outer headers (given in order) and a body.

    With a body, ``Content-Length`` goes first (as FreeSWITCH sends events) or, with
    ``length_first=False``, after the other headers (as it sends ``api/response``).
    """
    data = body.encode("utf-8") if isinstance(body, str) else body
    lines = [f"{name}: {value}" for name, value in headers]
    if data:
        length = f"Content-Length: {len(data)}"
        lines = [length, *lines] if length_first else [*lines, length]
    return ("\n".join(lines) + "\n\n").encode("utf-8") + data


def encode_event_plain(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """Server side: a ``text/event-plain`` frame; values URL-encoded as FreeSWITCH does."""
    return encode_event_plain_lines([plain_line(k, str(v)) for k, v in headers], body)


def encode_event_plain_lines(lines: list[str], body: str | None = None) -> bytes:
    """:func:`encode_event_plain` from header lines already made by :func:`plain_line`."""
    if body is not None:
        b = body.encode("utf-8")
        lines.append(f"Content-Length: {len(b)}")
        inner = ("\n".join(lines) + "\n\n").encode("utf-8") + b
    else:
        inner = ("\n".join(lines) + "\n\n").encode("utf-8")
    return encode_frame([("Content-Type", "text/event-plain")], inner)


def plain_line(name: str, value: str) -> str:
    """One ``name: value`` header line of a ``text/event-plain`` event."""
    return f"{name}: {url_encode(value)}"


def encode_event_json(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """Server side: a ``text/event-json`` frame."""
    data = {k: str(v) for k, v in headers}
    if body is not None:
        data["Content-Length"] = str(len(body.encode("utf-8")))
        data["_body"] = body
    return encode_frame([("Content-Type", "text/event-json")], json.dumps(data))
