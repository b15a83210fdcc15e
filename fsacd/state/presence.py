"""The Redis side of fsacd/acd/presence.py: agents busy outside fsacd.

``ext:{agent}`` (set of the agent's channels that are not fsacd's, each as
``<Core-UUID>/<channel uuid>``: with several FreeSWITCH servers each keeps its own), ``ext_busy``
(agents with any), ``unregistered`` and ``dnd`` (sets of agent ids). Written only by the
presence watcher of each controller; read by the matcher (``skip_busy_agents``).
"""

from __future__ import annotations

from collections.abc import Mapping

from fsacd.state.base import StateBase
from fsacd.state.scripts import full_source


def member(core: str, uuid: str) -> str:
    """The ``ext:{agent}`` member of a channel on the FreeSWITCH with Core-UUID ``core``."""
    return f"{core}/{uuid}"


class PresenceStore(StateBase):
    """The sets of agents not to offer calls to now."""

    def busy_agents(self) -> set[str]:
        """Agents on a call outside fsacd, unregistered, or in do-not-disturb."""
        k = self.keys
        return set(self.r.sunion(k.ext_busy(), k.unregistered(), k.dnd()))

    def replace_external(
        self, busy: Mapping[str, set[str]], core: str, earlier: tuple[str, ...] = ()
    ) -> None:
        """After a (re)connect to the FreeSWITCH with Core-UUID ``core``: the agents' outside
        channels *there* are exactly ``busy`` (agent -> channel uuids), atomically. Channels
        other FreeSWITCH servers reported stay; those of ``earlier`` Core-UUIDs of this one
        (it restarted) go."""
        cores = [core, *[c for c in earlier if c and c != core]]
        pairs: list[str] = []
        for agent, uuids in busy.items():
            for uuid in uuids:
                pairs += [agent, member(core, uuid)]
        script = self.r.register_script(full_source("presence_sync"))
        script(
            keys=[self.keys.events(), self.keys.ext_busy()],
            args=[self.keys.prefix, "0", str(len(cores)), *cores, *pairs],
        )

    def external_started(self, agent: str, uuid: str, core: str) -> None:
        """A channel of ``agent`` that is not fsacd's came up on FreeSWITCH ``core``."""
        k = self.keys
        pipe = self.r.pipeline()
        pipe.sadd(k.agent_ext(agent), member(core, uuid))
        pipe.sadd(k.ext_busy(), agent)
        pipe.execute()

    def external_ended(self, agent: str, uuid: str, core: str) -> bool:
        """That channel hung up. True when the agent has no outside channel left (it is no
        longer busy: its queues may have a match)."""
        k = self.keys
        self.r.srem(k.agent_ext(agent), member(core, uuid), uuid)  # uuid: the old form
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
