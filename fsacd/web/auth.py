"""The access token of ``fsacd web``: required when it listens beyond loopback."""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "fsacd_token"




def presented(environ: dict[str, Any]) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, ``?token=`` or the cookie."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if query.get("token"):
        return query["token"][0]
    cookie = SimpleCookie()
    try:
        cookie.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is no token
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None


def allowed(environ: dict[str, Any], token: str | None) -> bool:
    """True when no token is needed, or the request carries the right one."""
    if token is None:
        return True
    given = presented(environ)
    return given is not None and hmac.compare_digest(given.encode(), token.encode())
