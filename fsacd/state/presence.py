"""The Redis side of fsacd/acd/presence.py: agents busy outside fsacd.

``ext:{agent}`` (set of the uuids of the agent's channels that are not fsacd's), ``ext_busy``
(agents with any), ``unregistered`` and ``dnd`` (sets of agent ids). Written only by the
presence watcher of each controller; read by the matcher (``skip_busy_agents``).
"""

from __future__ import annotations

from collections.abc import Mapping

from fsacd.state.base import StateBase


class PresenceStore(StateBase):
    """The sets of agents not to offer calls to now."""

    def busy_agents(self) -> set[str]:
        """Agents on a call outside fsacd, unregistered, or in do-not-disturb."""
        k = self.keys
        return set(self.r.sunion(k.ext_busy(), k.unregistered(), k.dnd()))

    def replace_external(self, busy: Mapping[str, set[str]]) -> None:
        """After a (re)connect: the agents' outside channels are exactly ``busy``
        (agent -> channel uuids), in one transaction."""
        k = self.keys
        old = self.r.smembers(k.ext_busy())
        pipe = self.r.pipeline()
        for agent in old:
            pipe.delete(k.agent_ext(agent))
        pipe.delete(k.ext_busy())
        for agent, uuids in busy.items():
            pipe.sadd(k.agent_ext(agent), *uuids)
            pipe.sadd(k.ext_busy(), agent)
        pipe.execute()

    def external_started(self, agent: str, uuid: str) -> None:
        """A channel of ``agent`` that is not fsacd's came up."""
        k = self.keys
        pipe = self.r.pipeline()
        pipe.sadd(k.agent_ext(agent), uuid)
        pipe.sadd(k.ext_busy(), agent)
        pipe.execute()

    def external_ended(self, agent: str, uuid: str) -> bool:
        """That channel hung up. True when the agent has no outside channel left (it is no
        longer busy: its queues may have a match)."""
        k = self.keys
        self.r.srem(k.agent_ext(agent), uuid)
        if self.r.scard(k.agent_ext(agent)):
            return False
        self.r.srem(k.ext_busy(), agent)
        return True

    def set_unregistered(self, agent: str, unregistered: bool) -> None:
        """The agent's phone unregistered (True) or registered again (False)."""
        if unregistered:
            self.r.sadd(self.keys.unregistered(), agent)
        else:
            self.r.srem(self.keys.unregistered(), agent)

    def set_dnd(self, agent: str, dnd: bool) -> bool:
        """The agent's phone published do-not-disturb on or off. True when DND was switched
        off (the agent was in ``dnd``)."""
        if dnd:
            self.r.sadd(self.keys.dnd(), agent)
            return False
        return bool(self.r.srem(self.keys.dnd(), agent))
