"""Load fsacd's Lua scripts once per client.

Each script lives in ``fsacd/state/lua/NAME.lua`` headed by a comment block listing its KEYS and
ARGV. ``fsacd/state/lua/_lib.lua`` (shared helpers and conventions: ``KEYS[1]`` is always the events
stream, ``ARGV[1]`` the key prefix, ``ARGV[2]`` the current time) is put in front of every
script when it is loaded, so each registered script is self-contained.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

#: The scripts, by file name without ``.lua``.
NAMES = (
    "add_agent",
    "adopt",
    "answered",
    "arrive",
    "callback",
    "candidates",
    "claim_bridged",
    "contact_lookup",
    "enqueue",
    "finish",
    "free_due",
    "mark_ringing",
    "match",
    "move_call",
    "park",
    "presence_sync",
    "release_agent",
    "release_offer",
    "remove_agent",
    "reserve",
    "set_status",
    "supervise_call",
)

LIB = "_lib"


@cache
def source(name: str) -> str:
    """The text of ``fsacd/state/lua/NAME.lua``."""
    return resources.files("fsacd.state").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


#: The line of ``_lib.lua`` that sets the events stream's length (replaced by ``[events]
#: max_length`` when the config gives another).
MAXLEN_LINE = "local EVENTS_MAXLEN = 100000\n"


def full_source(name: str, events_maxlen: int | None = None) -> str:
    """What is sent to Redis for ``name``: the shared helpers, then the script."""
    lib = source(LIB)
    if events_maxlen is not None:
        lib = lib.replace(MAXLEN_LINE, f"local EVENTS_MAXLEN = {int(events_maxlen)}\n")
    return f"{lib}\n-- ---- {name}.lua ----\n{source(name)}"


class Scripts:
    """The registered scripts of one client, as attributes (``scripts.reserve(keys, args)``)."""

    add_agent: Script
    adopt: Script
    answered: Script
    arrive: Script
    callback: Script
    candidates: Script
    claim_bridged: Script
    contact_lookup: Script
    enqueue: Script
    finish: Script
    free_due: Script
    mark_ringing: Script
    match: Script
    move_call: Script
    park: Script
    presence_sync: Script
    release_agent: Script
    release_offer: Script
    remove_agent: Script
    reserve: Script
    set_status: Script
    supervise_call: Script

    def __init__(self, r: redis.Redis, events_maxlen: int | None = None) -> None:
        self._r = r
        for name in NAMES:
            setattr(self, name, r.register_script(full_source(name, events_maxlen)))

    def load(self) -> None:
        """SCRIPT LOAD every script now (a controller at start): the first call then runs on
        EVALSHA at once instead of a NOSCRIPT reply and a load on its hot path."""
        for name in NAMES:
            self._r.script_load(getattr(self, name).script)
