"""Every Redis key and channel name fsacd uses, built from one prefix.

The Lua helpers in ``fsacd/state/lua/_lib.lua`` build the per-agent, per-queue and per-call keys
from the same prefix (scripts only learn some agent and queue names while they run); the two
must agree, which ``tests/test_store.py`` checks. docs/redis.md describes each key.
"""

from __future__ import annotations

DEFAULT_PREFIX = "fsacd:"
#: Approximate length the ``events`` stream is trimmed to (``XADD MAXLEN ~``). The Lua
#: helpers (``EVENTS_MAXLEN`` in ``fsacd/state/lua/_lib.lua``) use the same number, which
#: ``tests/test_store.py`` checks.
EVENTS_MAXLEN = 100000
#: Length of one interval of the figures (seconds); how long day and interval hashes are
#: kept. ``STATS_SLOT``, ``STATS_DAY_TTL``, ``STATS_SLOT_TTL`` in ``_lib.lua`` are the same.
STATS_SLOT = 900
STATS_DAY_TTL = 400 * 86400
STATS_SLOT_TTL = 35 * 86400
#: Kinds of figures: per queue and per agent.
STATS_KINDS = ("queue", "agent")


class Keys:
    """Key names under ``prefix`` (default ``fsacd:``)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def pattern(self) -> str:
        """Glob (``SCAN MATCH``) of every key under the prefix (benchmarks clean up with it)."""
        return f"{self.prefix}*"

    # agents
    def agent(self, agent_id: str) -> str:
        """Hash: one agent."""
        return f"{self.prefix}agent:{agent_id}"

    def agents(self) -> str:
        """Set: all agent ids."""
        return f"{self.prefix}agents"

    def ready(self) -> str:
        """Zset: agent id -> ready_at, for agents whose ``ready_at`` lies ahead."""
        return f"{self.prefix}ready"

    # queues
    def queues(self) -> str:
        """Set: the configured queue names (written by ``Store.sync_queues``)."""
        return f"{self.prefix}queues"

    def queue(self, name: str) -> str:
        """Hash: per-queue state (``name``, ``strategy``, ``rr_last``)."""
        return f"{self.prefix}queue:{name}"

    def queue_members(self, name: str) -> str:
        """Zset: agent id -> position in the queue (lower first)."""
        return f"{self.prefix}queue:{name}:members"

    def queue_handle_times(self, name: str) -> str:
        """List: the queue's recent handle times (talk + wrap-up, seconds), newest first."""
        return f"{self.prefix}queue:{name}:aht"

    def queue_inqueue(self, name: str) -> str:
        """Zset: call id -> entered_at, calls waiting or being offered (not yet answered)."""
        return f"{self.prefix}queue:{name}:inqueue"

    def queue_free(self, name: str) -> str:
        """Zset: the queue's free member agents -> their score under the queue's strategy
        (the pick index, kept by the Lua scripts: fsacd/state/lua/_lib.lua ``sync_free``)."""
        return f"{self.prefix}queue:{name}:free"

    def queue_waiting(self, name: str) -> str:
        """Zset: call id -> score (priority, then arrival); lowest is served first."""
        return f"{self.prefix}queue:{name}:waiting"

    # calls
    def call(self, call_id: str) -> str:
        """Hash: one call (expires a while after it ended)."""
        return f"{self.prefix}call:{call_id}"

    def calls(self) -> str:
        """Set: ids of the live (not ended) calls."""
        return f"{self.prefix}calls"

    def seq(self) -> str:
        """Counter: arrival order of calls."""
        return f"{self.prefix}seq"

    # events, controllers, channels
    def events(self) -> str:
        """Stream: the event log."""
        return f"{self.prefix}events"

    def controller(self, controller_id: str) -> str:
        """String with TTL: a controller's lease."""
        return f"{self.prefix}controller:{controller_id}"

    def wake_channel(self) -> str:
        """Pub/sub channel: payload is a queue name that may have a match to make."""
        return f"{self.prefix}wake"

    def control_channel(self) -> str:
        """Pub/sub channel: commands to every controller (payload ``reload``)."""
        return f"{self.prefix}control"

    def dial_request(self, request_id: str) -> str:
        """String with TTL: which controller took a supervisor's ``fsacd call dial``."""
        return f"{self.prefix}dialreq:{request_id}"

    def ctl_channel(self, controller_id: str) -> str:
        """Pub/sub channel: JSON offer hand-offs to the controller owning the call."""
        return f"{self.prefix}ctl:{controller_id}"

    # contacts, CRM cache, screen pops, call history (docs/screen-pop.md)
    def contact(self, contact_id: str) -> str:
        """Hash: one contact record (numbers as a JSON list)."""
        return f"{self.prefix}contact:{contact_id}"

    def contacts(self) -> str:
        """Set: all contact ids."""
        return f"{self.prefix}contacts"

    def contact_number(self, e164: str) -> str:
        """Set: ids of the contacts that have the number ``e164``."""
        return f"{self.prefix}contacts:number:{e164}"

    def crm_cache(self, e164: str) -> str:
        """String with TTL: the external CRM's JSON answer for ``e164``."""
        return f"{self.prefix}crm:{e164}"

    def call_pop(self, call_id: str) -> str:
        """Hash with TTL: the screen pop prepared while the caller waits."""
        return f"{self.prefix}pop:call:{call_id}"

    def agent_pops(self, agent_id: str) -> str:
        """Stream (and pub/sub channel of the same name): the screen pops for one agent."""
        return f"{self.prefix}pop:agent:{agent_id}"

    def history(self, ref: str) -> str:
        """List: previous calls of one number; ``ref`` is the E.164 or ``h:`` + salted hash."""
        return f"{self.prefix}history:{ref}"

    # caller-ID numbers and their verification (docs/caller-id.md)
    def number(self, e164: str) -> str:
        """Hash: one presentable number of the company (verification state, queues, agent)."""
        return f"{self.prefix}number:{e164}"

    def numbers(self) -> str:
        """Set: every registered presentable number (E.164)."""
        return f"{self.prefix}numbers"

    def number_blocks(self) -> str:
        """Hash: number block prefix -> JSON of an operator's verification of the whole block."""
        return f"{self.prefix}numbers:blocks"

    def numbers_version(self) -> str:
        """Counter: bumped on every change of the number registry (snapshot caching)."""
        return f"{self.prefix}numbers:version"

    # agents busy outside fsacd (fsacd/acd/presence.py)
    def agent_ext(self, agent_id: str) -> str:
        """Set: uuids of the agent's channels that are not fsacd's (direct calls)."""
        return f"{self.prefix}ext:{agent_id}"

    def ext_busy(self) -> str:
        """Set: agents with at least one channel outside fsacd."""
        return f"{self.prefix}ext_busy"

    def unregistered(self) -> str:
        """Set: agents whose phone unregistered (sofia::unregister) and has not come back."""
        return f"{self.prefix}unregistered"

    def dnd(self) -> str:
        """Set: agents whose phone published do-not-disturb (PRESENCE_IN)."""
        return f"{self.prefix}dnd"

    # figures (docs/redis.md "Figures"; written by the Lua scripts, read by state/stats.py)
    def stats_total(self, kind: str, name: str) -> str:
        """Hash: running totals of a queue or agent (``kind`` ``queue``/``agent``)."""
        return f"{self.prefix}stats:{kind}:{name}:total"

    def stats_day(self, kind: str, name: str, day: str) -> str:
        """Hash: counters of one UTC day ``YYYY-MM-DD``."""
        return f"{self.prefix}stats:{kind}:{name}:day:{day}"

    def stats_slot(self, kind: str, name: str, slot: str) -> str:
        """Hash: counters of one 15-minute interval, ``slot`` = ``YYYY-MM-DDTHH:MM`` (UTC)."""
        return f"{self.prefix}stats:{kind}:{name}:slot:{slot}"

    def queue_live(self, name: str) -> str:
        """Hash: live gauges of a queue (``waiting``, ``oldest``, ``talking``, ``updated_at``)."""
        return f"{self.prefix}stats:queue:{name}:live"
