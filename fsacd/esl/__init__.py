"""Event-socket layer: pure framing, hardened greenswitch sessions, the outbound server."""

from .framing import Event, Frame, FramingError
from .server import OutboundServer
from .session import (
    AuthError,
    CommandError,
    ESLDisconnected,
    ESLError,
    ESLTimeout,
    InboundClient,
    OutboundSession,
)

__all__ = [
    "AuthError",
    "CommandError",
    "ESLDisconnected",
    "ESLError",
    "ESLTimeout",
    "Event",
    "Frame",
    "FramingError",
    "InboundClient",
    "OutboundServer",
    "OutboundSession",
]
