"""The ``fsacd`` console script and ``python -m fsacd``.

Commands that run on gevent (``serve``, ``web``, and every command that talks to FreeSWITCH's
inbound event socket through greenswitch) get gevent's patches first, before anything (redis,
ssl, urllib) imports the standard library. A supervisor's everyday commands only read and write
Redis: they skip the patching (~0.15 s of CPU each) and answer sooner.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: Commands (the group, or group and command) that only talk to Redis and the local files.
#: tests/test_cli_entry.py checks that none of them reaches the event socket.
PLAIN: frozenset[tuple[str, ...]] = frozenset(
    {
        ("agent",),
        ("queue",),
        ("calls",),
        ("stats",),
        ("watch",),
        ("config",),
        ("contacts",),
        ("pop",),
        ("reload",),
        ("call", "show"),
        ("call", "move"),
        ("call", "priority"),
        ("call", "dial"),
        ("call", "revoke-recording"),
        ("numbers", "add"),
        ("numbers", "list"),
        ("numbers", "remove"),
        ("numbers", "confirm"),
        ("numbers", "mark-verified"),
    }
)

#: Options of the ``fsacd`` group that take a value (skipped to find the command).
VALUE_OPTIONS = ("--config",)


def command_words(argv: Sequence[str]) -> tuple[str, ...]:
    """The first two words after the group's own options (``--config X`` skipped)."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in VALUE_OPTIONS:
            skip = True
            continue
        if arg.startswith("-"):
            if words:
                break  # a command's option: the command is known
            continue
        words.append(arg)
        if len(words) == 2:
            break
    return tuple(words)


def needs_gevent(argv: Sequence[str]) -> bool:
    """False for the commands in :data:`PLAIN` (and for bare ``--help``/``--version``)."""
    words = command_words(argv)
    if not words:
        return False
    return words[:1] not in PLAIN and words[:2] not in PLAIN


def main() -> None:
    patched = needs_gevent(sys.argv[1:])
    if patched:
        from gevent import monkey

        monkey.patch_all()
    from fsacd.cli.main import main as cli

    if patched:
        cli()
        return
    try:
        cli()
    except SystemExit as exc:
        _exit_now(exc.code)
    _exit_now(0)


def _exit_now(code: object) -> None:
    """End a Redis-only command without the interpreter's tear-down of every module
    (~0.13 s): the exit handlers run (the embedded Redis stops, logs are flushed), the
    output is flushed, then the process ends with click's exit code."""
    import atexit
    import os

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
