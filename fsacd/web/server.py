"""Start ``fsacd web``: the token rule, the gevent WSGI server, start-up and stop."""

from __future__ import annotations

import logging
import signal
from typing import Any

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer

from fsacd.config import Config
from fsacd.core.netaddr import is_loopback_host
from fsacd.secret import SecretError, read_secret
from fsacd.state.stats import StatsStore
from fsacd.web.app import WebApp

log = logging.getLogger(__name__)

#: Shortest access token accepted.
MIN_TOKEN = 16


class WebError(Exception):
    """``fsacd web`` cannot start (the message says why and what to do)."""


def access_token(cfg: Config, host: str) -> str | None:
    """The token requests must carry: the configured one, required beyond loopback."""
    w = cfg.web
    try:
        token = read_secret(w.token_env, w.token_file, strict=True)
    except SecretError as exc:
        raise WebError(f"web.token_file: {exc}") from None
    where = f"file {w.token_file}" if w.token_file else f"${w.token_env}"
    if token is not None and len(token) < MIN_TOKEN:
        raise WebError(f"the access token in {where} is shorter than {MIN_TOKEN} characters")
    if token is None and not is_loopback_host(host):
        raise WebError(
            f"listening on {host} (beyond loopback) needs an access token: put one of at "
            f"least {MIN_TOKEN} characters in {where} ([web] token_env / token_file)"
        )
    return token


def make_server(cfg: Config, stats: StatsStore, address: tuple[str, int]) -> WSGIServer:
    """A WSGI server (not started) serving the wallboard on ``address``."""
    token = access_token(cfg, address[0])
    app = WebApp(cfg, stats, token)
    return WSGIServer(address, app, log=None, error_log=log)


def run(cfg: Config, store: Any, address: tuple[str, int], config_path: str = "") -> None:
    """``fsacd web``: serve until SIGTERM/SIGINT."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stats = StatsStore.of(store)
    server = make_server(cfg, stats, address)
    try:
        server.start()
    except OSError as exc:
        raise WebError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
    host, port = server.address[:2]
    log.info(
        "fsacd web on http://%s:%d/ (config %s, Redis %s)%s",
        host,
        port,
        config_path or "-",
        stats.where(),
        "" if server.application.token is None else ", access token required",
    )
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    server.stop(timeout=2)
