"""The CLI's own connection to FreeSWITCH's inbound event socket (``[freeswitch] inbound``),
with one-line errors that say what to set or start."""

from __future__ import annotations

from typing import Any

from fsacd.cli.common import fail


def password_source(cfg: Any) -> str:
    """Where the event-socket password is read from, for messages."""
    fs = cfg.freeswitch
    if fs.password_file:
        return f"the file {fs.password_file} (freeswitch.password_file)"
    return f"the environment variable {fs.password_env or 'FSACD_ESL_PASSWORD'}"


def connect(app: Any, command_timeout: float | None = None) -> Any:
    """A connected, authenticated :class:`~fsacd.esl.session.InboundClient`; a one-line error
    (exit code 1) naming what to fix when that fails."""
    from fsacd.config import ConfigError, password
    from fsacd.esl.session import AuthError, ESLError, InboundClient

    cfg = app.cfg
    try:
        secret = password(cfg)
    except ConfigError as exc:
        fail(exc.errors[0])
    if not secret:
        fail(f"no event-socket password: set {password_source(cfg)}")
    host, port = cfg.freeswitch.inbound_address
    client = InboundClient(
        host,
        port,
        secret,
        command_timeout=command_timeout or cfg.server.command_timeout,
    )
    try:
        client.connect()
    except AuthError:
        client.close()
        fail(
            f"FreeSWITCH {host}:{port} refused the event-socket password from "
            f"{password_source(cfg)} (see event_socket.conf.xml)"
        )
    except ESLError as exc:
        client.close()
        fail(
            f"cannot reach FreeSWITCH's event socket at {host}:{port} ([freeswitch] inbound): {exc}"
        )
    return client


def api(client: Any, command: str, timeout: float | None = None) -> str:
    """``api COMMAND``: the reply body, stripped; a one-line error when the socket fails."""
    from fsacd.esl.session import ESLError

    try:
        return (client.api(command, timeout) or "").strip()
    except ESLError as exc:
        fail(f"FreeSWITCH: {command.split()[0]}: {exc}")
