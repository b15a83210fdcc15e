"""``scripts/bench framing``: the cost of reading events, on real FreeSWITCH recordings.

Replays what FreeSWITCH sent in each recorded conversation (tests/data/esl-transcripts, or
``--dir``), exactly as ``recv()`` delivered it, through what a call's outbound socket does with
every read: :class:`~fsacd.esl.framing.FrameReader` cuts the frames, :func:`frame_event` parses
each event, and the call flow reads the few headers it looks at. Printed per event (p50 over
``--rounds`` replays of each recording, in microseconds of this process's CPU):

- ``cut``: cutting the frames (per event: the reads' cost divided by the events they held);
- ``parse``: ``frame_event`` of one event;
- ``use``: parse plus the headers a call flow reads (name, uuids, application, DTMF digit);
- ``read``: cut + use, the whole cost of one event on the socket.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fsacd.esl.framing import Event, Frame, FrameReader, frame_event

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "esl-transcripts"
#: headers the call flow (fsacd/acd/callflow.py, esl/session.py) reads from most events
USED = ("Unique-ID", "Application-UUID", "Application", "DTMF-Digit", "Other-Leg-Unique-ID")


def received(path: Path) -> list[bytes]:
    """What FreeSWITCH wrote in one recording: one item per ``recv()``."""
    with path.open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r["data"].encode("utf-8") for r in records if r["dir"] == "in"]


def _use(ev: Event) -> int:
    n = len(ev.name or "")
    for name in USED:
        n += len(ev.get(name) or "")
    return n


def _event_frames(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.content_type in ("text/event-plain", "text/event-json")]


def replay(reads: list[bytes]) -> tuple[float, list[float], list[float], int]:
    """One replay: the cut time, per-event parse times, per-event parse+use times, events."""
    clock = time.process_time_ns
    reader = FrameReader()
    frames: list[Frame] = []
    t = clock()
    for data in reads:
        frames.extend(reader.feed(data))
    cut = (clock() - t) / 1000
    events = _event_frames(frames)
    parse, use = [], []
    for frame in events:
        t = clock()
        frame_event(frame)
        parse.append((clock() - t) / 1000)
        t = clock()
        _use(frame_event(frame))
        use.append((clock() - t) / 1000)
    return cut, parse, use, len(events)


def _p50(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def bench(directory: Path, rounds: int) -> list[str]:
    lines = []
    all_cut, all_parse, all_use = [], [], []
    total_events = total_bytes = 0
    for path in sorted(directory.glob("*.jsonl")):
        reads = received(path)
        cuts, parse, use = [], [], []
        n = 0
        for _ in range(rounds):
            cut, p, u, n = replay(reads)
            if n:
                cuts.append(cut / n)
            parse.extend(p)
            use.extend(u)
        if not n:
            continue
        total_events += n
        total_bytes += sum(len(f.body) for f in _event_frames(FrameReader().feed(b"".join(reads))))
        all_cut.extend(cuts)
        all_parse.extend(parse)
        all_use.extend(use)
        c, p, u = _p50(cuts), _p50(parse), _p50(use)
        lines.append(
            f"  {path.stem:45} {n:3} events  cut {c:6.1f}  parse {p:6.1f}  use {u:6.1f}"
            f"  read {c + u:6.1f} us"
        )
    c, p, u = _p50(all_cut), _p50(all_parse), _p50(all_use)
    head = (
        f"framing: {total_events} events ({total_bytes / max(total_events, 1) / 1024:.1f} kB "
        f"each on average) in {len(lines)} recordings, {rounds} rounds; p50 per event: "
        f"cut {c:.1f} us, parse {p:.1f} us, use {u:.1f} us, read {c + u:.1f} us"
    )
    return [head, *lines]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="recordings (*.jsonl)")
    ap.add_argument("--rounds", type=int, default=200, help="replays of each recording")
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        ap.error(f"no recordings at {args.dir}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    for line in bench(args.dir, args.rounds):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
