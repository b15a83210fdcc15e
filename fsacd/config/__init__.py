"""The TOML config → frozen dataclasses, fully validated at load.

Every problem is reported (not just the first) in one :class:`ConfigError`, each message
naming the key, e.g. ``queues.support.ring_timeout: must be a whole number of seconds from 1
to 3600, got 2.5``. Unknown keys are errors too. docs/config.md is the reference.

The package: :mod:`~fsacd.config.model` (the dataclasses), :mod:`~fsacd.config.reader` (the
table walker and :class:`ConfigError`), one module per section (:mod:`~fsacd.config.server`,
:mod:`~fsacd.config.queues`, :mod:`~fsacd.config.screenpop`, :mod:`~fsacd.config.callerid`,
:mod:`~fsacd.config.ivr`, :mod:`~fsacd.config.routes`) and :mod:`~fsacd.config.loader`, which
reads a file with them. This module re-exports what the rest of fsacd uses.
"""

from fsacd.config.loader import check, load, load_text, resolve_path
from fsacd.config.model import (
    Config,
    CrmConfig,
    FreeswitchConfig,
    HistoryConfig,
    NumbersConfig,
    QueueConfig,
    RedisConfig,
    ServerConfig,
    split_address,
)
from fsacd.config.reader import ConfigError
from fsacd.config.server import default_controller_id, password

__all__ = [
    "Config",
    "ConfigError",
    "CrmConfig",
    "FreeswitchConfig",
    "HistoryConfig",
    "NumbersConfig",
    "QueueConfig",
    "RedisConfig",
    "ServerConfig",
    "check",
    "default_controller_id",
    "load",
    "load_text",
    "password",
    "resolve_path",
    "split_address",
]
