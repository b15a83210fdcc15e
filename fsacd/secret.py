"""Secrets named by the config: read from a file or an environment variable, at use.

The config only names where a secret is (``*_env`` / ``*_file`` keys, never the value); this
reads it: the CRM token, webhook secrets, the SMS sender's token, the salt for hashing hidden
numbers. Values are never logged. (``fsacd.config.password`` does the same for the
event-socket password, with config errors.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

#: Shortest salt accepted for hashing hidden numbers (``[history] salt_env`` / ``salt_file``).
MIN_SALT = 16


class SecretError(ValueError):
    """A secret file that cannot be read (``strict``); the message names the file."""


def read_secret(
    env_name: str | None,
    path: str | None,
    env: Mapping[str, str] | None = None,
    *,
    strict: bool = False,
) -> str | None:
    """A secret from the file ``path`` (trailing newlines dropped) or else the environment
    variable ``env_name`` (in ``env``, default ``os.environ``); None if neither gives a
    non-empty value. A file that cannot be read: :class:`SecretError` if ``strict``, else a
    warning (naming the file only) and None."""
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            if strict:
                raise SecretError(f"cannot read {path}: {exc.strerror}") from None
            log.warning("cannot read secret file %s: %s", path, exc.strerror)
            return None
        return value or None
    env = os.environ if env is None else env
    if env_name:
        return env.get(env_name) or None
    return None
