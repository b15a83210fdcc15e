"""Every Redis key and channel name fsacd uses, built from one prefix.

The Lua helpers in ``fsacd/lua/_lib.lua`` build the per-agent, per-queue and per-call keys
from the same prefix (scripts only learn some agent and queue names while they run); the two
must agree, which ``tests/test_store.py`` checks. docs/redis.md describes each key.
"""

from __future__ import annotations

DEFAULT_PREFIX = "fsacd:"


class Keys:
    """Key names under ``prefix`` (default ``fsacd:``)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

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

    def ctl_channel(self, controller_id: str) -> str:
        """Pub/sub channel: JSON offer hand-offs to the controller owning the call."""
        return f"{self.prefix}ctl:{controller_id}"
