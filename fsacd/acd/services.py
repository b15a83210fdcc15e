"""What a call's greenlet needs from the controller that runs it.

The call flow (fsacd/acd/callflow.py) and the callbacks (fsacd/acd/callback.py) depend on
this protocol, not on the controller: fsacd/acd/controller.py implements it (and tests may
give a smaller object). Nothing here imports the controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fsacd.acd.matcher import Matcher
    from fsacd.config import Config
    from fsacd.esl.callfeed import CallFeed
    from fsacd.esl.client import FreeSwitchClient
    from fsacd.esl.mailbox import Mailbox
    from fsacd.pop.contacts import Contacts
    from fsacd.pop.screen import ScreenPop
    from fsacd.state.store import Store
    from fsacd.verified.registry import VerifiedNumbers


class CallbackDesk(Protocol):
    """The callbacks (virtual hold) as the call flow uses them."""

    def refusal(self, queue: str, number: str) -> str | None:
        """Why a callback to ``number`` through ``queue`` cannot be dialled, None if it can."""

    def register(self, call_id: str, number: str, queue: str) -> bool:
        """Keep the caller's place and call back ``number``; False when refused."""


class Services(Protocol):
    """The controller's parts a call uses: config, state, matching, screen pop, numbers."""

    cfg: Config
    store: Store
    matcher: Matcher
    pop: ScreenPop
    contacts: Contacts
    verified: VerifiedNumbers
    fs: FreeSwitchClient
    controller_id: str
    number_salt: str
    callbacks: CallbackDesk

    def register_call(self, call_id: str, inbox: Mailbox) -> None:
        """Offers and control messages for ``call_id`` go to ``inbox``."""

    def unregister_call(self, call_id: str, inbox: Mailbox | None = None) -> None:
        """Forget a call's inbox (only ``inbox``, when given)."""

    def call_inbox(self, call_id: str) -> Mailbox | None:
        """The inbox of a local call, if any."""

    def register_leg(self, leg_uuid: str, call_id: str) -> None:
        """An agent leg of a local call (its DTMF reaches the call)."""

    def unregister_leg(self, leg_uuid: str) -> None:
        """Forget an agent leg."""

    def wait_leg_end(self, leg_uuid: str, core_uuid: str, timeout: float) -> bool | None:
        """Wait until the switch reports a registered agent leg gone (None: no one to ask)."""

    def feed_for(self, core_uuid: str) -> CallFeed | None:
        """The shared call-event feed of that switch, if up."""

    def wake_later(self, delay: float) -> None:
        """Run matching again after ``delay`` seconds (wrap-up ends)."""
