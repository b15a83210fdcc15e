"""The TOML config → frozen dataclasses, fully validated at load.

Every problem is reported (not just the first) in one :class:`ConfigError`, each message
naming the key, e.g. ``queues.support.ring_timeout: must be a whole number of seconds from 1
to 3600, got 2.5``. Unknown keys are errors too. docs/config.md is the reference.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import socket
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from fsacd.core import consent, dialstring, ivr, numbers, routing
from fsacd.core.strategies import STRATEGIES

DEFAULT_PATH = "fsacd.toml"
ENV_CONFIG = "FSACD_CONFIG"
ENV_REDIS_URL = "REDIS_URL"

DAY = 86400.0
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTROLLER_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: What agents see of a call (queues.NAME.agent_sees) and customers of a call out
#: (queues.NAME.customer_sees); docs/caller-id.md.
AGENT_SEES = ("caller", "queue", "transferring-agent", "anonymous")
CUSTOMER_SEES = ("network", "pool", "agent", "anonymous")
DEFAULT_GATEWAY_TEMPLATE = "sofia/gateway/{gw}/{e164}"
_HTTP_SCHEMES = ("http://", "https://")

#: Optional parts of a screen pop a queue's ``pop_fields`` may name (docs/screen-pop.md);
#: ``contact.FIELD`` (or ``contact.*``) names the fields of each contact record shown.
POP_FIELDS = (
    "number",
    "caller_name",
    "queue_name",
    "contacts",
    "new_contact",
    "ivr",
    "waited",
    "history",
)
#: ``pop_fields`` when a queue gives none: everything but free-form contact fields.
DEFAULT_POP_FIELDS = (
    *POP_FIELDS,
    *(
        f"contact.{f}"
        for f in ("id", "name", "company", "status", "language", "tier", "notes", "tickets")
    ),
    "contact.numbers",
)
_POP_CONTACT_FIELD = re.compile(r"contact\.(\*|\w{1,64})")


class ConfigError(Exception):
    """The config can't be used; ``errors`` lists every problem, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:8084"
    controller_id: str = ""
    max_calls: int = 1000
    command_timeout: float = 10.0
    drain_timeout: float = 30.0
    lease: float = 15.0
    recovery_interval: float = 5.0

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)``."""
        return split_address(self.listen)


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = None
    data_dir: str = "var"
    prefix: str = "fsacd:"


@dataclass(frozen=True)
class FreeswitchConfig:
    inbound: str = "127.0.0.1:8021"
    password_env: str | None = "FSACD_ESL_PASSWORD"
    password_file: str | None = None
    default_region: str = "DE"

    @property
    def inbound_address(self) -> tuple[str, int]:
        """``inbound`` as ``(host, port)``."""
        return split_address(self.inbound)


class QueueRules(NamedTuple):
    """What an agent's failed offer costs (see ``Store.offer_failed``)."""

    max_no_answer: int
    no_answer_delay: float
    busy_delay: float
    reject_delay: float


#: ``answer_mode`` values of a queue.
ANSWER_MODES = ("answer", "pre-answer")


@dataclass(frozen=True)
class QueueConfig:
    name: str
    strategy: str = "first-available"
    ring_timeout: int = 15
    max_wait: float = 0.0
    overflow: str | None = None
    wrap_up: float = 5.0
    max_no_answer: int = 3
    no_answer_delay: float = 10.0
    busy_delay: float = 10.0
    reject_delay: float = 30.0
    moh: str = "local_stream://moh"
    priority: int = 0
    number: str | None = None
    display_name: str | None = None
    # queue rules (docs/config.md): empty queues, length limit, agents busy outside fsacd
    join_empty: bool = True
    leave_empty: bool = False
    max_length: int = 0
    skip_busy_agents: bool = True
    moh_segment: float = 60.0
    #: how a caller who has to wait hears the hold music: "answer" (answered first) or
    #: "pre-answer" (early media; the bridge answers). A caller bridged at once is answered
    #: by the bridge either way.
    answer_mode: str = "answer"
    # during the call: the key that revokes recording consent; the callback dialog
    revoke_key: str | None = "*"
    callback_prompt: tuple[str, ...] = ("ivr/ivr-enter_destination_telephone_number.wav",)
    callback_invalid_prompt: tuple[str, ...] = ("ivr/ivr-that_was_an_invalid_entry.wav",)
    callback_confirmed_prompt: tuple[str, ...] = ("ivr/ivr-thank_you.wav",)
    # screen pop (docs/screen-pop.md)
    region: str | None = None
    pop_fields: tuple[str, ...] | None = None
    webhook_url: str | None = None
    webhook_secret_env: str | None = None
    webhook_secret_file: str | None = None
    webhook_timeout: float = 1.0
    # caller ID (docs/caller-id.md)
    agent_sees: str = "caller"
    allow_network_number: bool = False
    customer_sees: str = "network"
    pool_fixed: str | None = None
    pool_existing: str | None = None
    pool_new: str | None = None
    pool_callback: bool = True
    network_only_countries: tuple[str, ...] = ()
    network_number: str | None = None
    gateway: str | None = None
    gateway_template: str = DEFAULT_GATEWAY_TEMPLATE
    # recording consent, announcements, exit and callback keys (docs/ivr.md)
    recording: str = "off"
    recording_path: str = consent.DEFAULT_PATH_TEMPLATE
    recording_notice: tuple[str, ...] | None = None
    consent_key: str = "1"
    announce_every: float = 0.0
    exit_key: str | None = None
    exit_target: str | None = None
    callback_key: str | None = None
    callback_retries: int = 2
    callback_retry_delay: float = 60.0

    @property
    def screen_pop_fields(self) -> tuple[str, ...]:
        """``pop_fields``, or :data:`DEFAULT_POP_FIELDS` when the queue gives none."""
        return DEFAULT_POP_FIELDS if self.pop_fields is None else self.pop_fields

    @property
    def rules(self) -> QueueRules:
        return QueueRules(
            self.max_no_answer, self.no_answer_delay, self.busy_delay, self.reject_delay
        )


@dataclass(frozen=True)
class CrmConfig:
    """External CRM lookup (``[crm]``); absent section = no CRM."""

    url: str
    timeout: float = 0.5
    cache_ttl: float = 300.0
    miss_ttl: float = 60.0
    token_env: str | None = None
    token_file: str | None = None


@dataclass(frozen=True)
class HistoryConfig:
    """fsacd's own call history per caller number (``[history]``)."""

    max_entries: int = 20
    ttl: float = 90 * DAY
    salt_env: str | None = "FSACD_HISTORY_SALT"
    salt_file: str | None = None


@dataclass(frozen=True)
class NumbersConfig:
    """Caller-ID numbers and their verification (``[numbers]``, docs/caller-id.md)."""

    network_number: str | None = None
    pai_host: str | None = None
    gateway: str | None = None
    gateway_template: str = DEFAULT_GATEWAY_TEMPLATE
    code_ttl: float = 600.0
    code_attempts: int = 5
    code_digits: int = 6
    resend_after: float = 60.0
    valid_days: int = 365
    call_app: str = "say"
    say_language: str = "en"
    tts_voice: str = "flite|kal"
    call_timeout: int = 45
    sms_command: tuple[str, ...] | None = None
    sms_webhook: str | None = None
    sms_token_env: str | None = None
    sms_token_file: str | None = None
    sms_text: str = "Your verification code is {code}"


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    redis: RedisConfig
    freeswitch: FreeswitchConfig
    queues: dict[str, QueueConfig]
    routes: dict[str, str] = field(default_factory=dict)
    default_route: str | None = None
    source: str = "<string>"
    #: derived: E.164 form of each route key that is a valid number → target
    routes_e164: dict[str, str] = field(default_factory=dict, repr=False)
    crm: CrmConfig | None = None
    history: HistoryConfig = field(default_factory=HistoryConfig)
    numbers: NumbersConfig = field(default_factory=NumbersConfig)
    #: IVR menus (``[ivr.NAME]``, docs/ivr.md)
    ivr: dict[str, ivr.Menu] = field(default_factory=dict)


# --- public functions -----------------------------------------------------------------------


def resolve_path(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """``explicit`` (``--config``), else ``$FSACD_CONFIG``, else ``./fsacd.toml``."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    return Path(DEFAULT_PATH)


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the file at ``path``; :class:`ConfigError` lists every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the config: {reason}"]) from None
    return load_text(text, source=str(path), env=env)


def load_text(text: str, source: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    """Validate TOML ``text``. ``env`` (default ``os.environ``) supplies ``REDIS_URL``."""
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    errors: list[str] = []
    cfg = _build(data, source, env, errors)
    if errors or cfg is None:
        raise ConfigError(errors)
    return cfg


def check(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with the config at ``path``; empty if it is fine."""
    try:
        load(path, env=env)
    except ConfigError as exc:
        return exc.errors
    return []


def password(cfg: Config, env: Mapping[str, str] | None = None) -> str | None:
    """The event-socket password, read now from the file or environment variable; else None."""
    fs = cfg.freeswitch
    if fs.password_file:
        try:
            return Path(fs.password_file).read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigError(
                [f"freeswitch.password_file: cannot read {fs.password_file}: {exc.strerror}"]
            ) from None
    env = os.environ if env is None else env
    if fs.password_env:
        return env.get(fs.password_env)
    return None


def split_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → ``(host, port)``; ``ValueError`` if malformed."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text)
    if not m:
        raise ValueError("must be HOST:PORT (IPv6: [ADDR]:PORT)")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError("port must be 0 to 65535")
    return host, port


def default_controller_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# --- validation -----------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value[:80].encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)


class _Table:
    """Typed access to one TOML table; remembers which keys were read, for unknown-key errors."""

    def __init__(self, data: Any, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        self.seen: set[str] = set()
        if isinstance(data, dict):
            self.data = data
        else:
            self.data = {}
            errors.append(f"{path}: must be a table, got {_show(data)}")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> None:
        self.errors.append(f"{self.key(name)}: {problem}")

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def string(self, name: str, default: str | None, *, max_len: int = 256) -> str | None:
        if name not in self.data:
            self.seen.add(name)
            return default
        v = self.raw(name)
        if not isinstance(v, str):
            self.error(name, f"must be a string, got {_show(v)}")
            return default
        if not v.strip():
            self.error(name, "must not be empty")
            return default
        if len(v) > max_len:
            self.error(name, f"must be at most {max_len} characters, got {len(v)}")
            return default
        if _has_control(v):
            self.error(name, "must not contain control characters")
            return default
        return v

    def integer(self, name: str, default: int, lo: int, hi: int, unit: str = "") -> int:
        if name not in self.data:
            self.seen.add(name)
            return default
        v = self.raw(name)
        what = f"a whole number of {unit}" if unit else "a whole number"
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            self.error(name, f"must be {what} from {lo} to {hi}, got {_show(v)}")
            return default
        return v

    def seconds(self, name: str, default: float, lo: float = 0, hi: float = DAY) -> float:
        if name not in self.data:
            self.seen.add(name)
            return default
        v = self.raw(name)
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or not lo <= v <= hi:
            self.error(
                name, f"must be a number of seconds from {_num(lo)} to {_num(hi)}, got {_show(v)}"
            )
            return default
        return float(v)

    def unknown(self) -> None:
        """Report every key that was not read, with a suggestion for near misses."""
        for name in self.data:
            if name not in self.seen:
                near = difflib.get_close_matches(name, sorted(self.seen), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                self.errors.append(f"{self.key(_quote_key(name))}: unknown key{hint}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _build(data: dict, source: str, env: Mapping[str, str], errors: list[str]) -> Config | None:
    top = _Table(data, "", errors)
    server = _server(_Table(top.raw("server") or {}, "server", errors))
    redis_cfg = _redis(_Table(top.raw("redis") or {}, "redis", errors), env)
    fs = _freeswitch(_Table(top.raw("freeswitch") or {}, "freeswitch", errors))
    queues = _queues(top.raw("queues"), errors)
    crm = _crm(_Table(top.raw("crm"), "crm", errors)) if top.has("crm") else None
    history = _history(_Table(top.raw("history") or {}, "history", errors))
    numbers_cfg = _numbers(_Table(top.raw("numbers") or {}, "numbers", errors))
    queues = _check_callerid(queues, numbers_cfg, errors)
    n_errors = len(errors)
    menus = ivr.load_menus(top.raw("ivr"), errors, tts_voice=numbers_cfg.tts_voice)
    ivr.check_menus(menus, queues, errors, loops=len(errors) == n_errors)
    _check_queue_ivr(queues, menus, errors)
    routes_t = _Table(top.raw("routes") or {}, "routes", errors)
    default_route = top.string("default_route", None)
    top.unknown()

    queue_names = set(queues)
    routes: dict[str, str] = {}
    routes_e164: dict[str, str] = {}
    e164_from: dict[str, str] = {}
    for dest, target in routes_t.data.items():
        key = routes_t.key(_quote_key(dest))
        if not dest or len(dest) > 64 or any(ch.isspace() for ch in dest) or _has_control(dest):
            errors.append(f"{key}: a destination must be 1 to 64 characters without spaces")
            continue
        if not isinstance(target, str):
            errors.append(f'{key}: must be a target string like "queue:NAME", got {_show(target)}')
            continue
        parsed = routing.parse_target(target, queue_names, menus)
        if isinstance(parsed, routing.RouteError):
            errors.append(f"{key}: {parsed.reason}")
            continue
        routes[dest] = target
        n = numbers.normalise(dest, fs.default_region)
        if n.e164:
            if n.e164 in routes_e164 and routes_e164[n.e164] != target:
                errors.append(
                    f"{key}: is the same number as {routes_t.key(_quote_key(e164_from[n.e164]))}"
                    " but routes elsewhere"
                )
            routes_e164.setdefault(n.e164, target)
            e164_from.setdefault(n.e164, dest)
    if default_route is not None:
        parsed = routing.parse_target(default_route, queue_names, menus)
        if isinstance(parsed, routing.RouteError):
            errors.append(f"default_route: {parsed.reason}")
            default_route = None
    if errors:
        return None
    return Config(
        server=server,
        redis=redis_cfg,
        freeswitch=fs,
        queues=queues,
        routes=routes,
        default_route=default_route,
        source=source,
        routes_e164=routes_e164,
        crm=crm,
        history=history,
        numbers=numbers_cfg,
        ivr=menus,
    )


def _quote_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key.replace('"', '\\"') + '"'


def _server(t: _Table) -> ServerConfig:
    d = ServerConfig()
    listen = t.string("listen", d.listen)
    try:
        split_address(listen)
    except ValueError as exc:
        t.error("listen", f"{exc}, got {_show(listen)}")
        listen = d.listen
    cid = t.string("controller_id", None, max_len=100)
    if cid is not None and not _CONTROLLER_ID.fullmatch(cid):
        t.error("controller_id", f"may only use letters, digits and _ . -, got {_show(cid)}")
        cid = None
    out = ServerConfig(
        listen=listen,
        controller_id=cid or default_controller_id(),
        max_calls=t.integer("max_calls", d.max_calls, 1, 100000),
        command_timeout=t.seconds("command_timeout", d.command_timeout, 0.1, 3600),
        drain_timeout=t.seconds("drain_timeout", d.drain_timeout),
        lease=t.seconds("lease", d.lease, 1, 3600),
        recovery_interval=t.seconds("recovery_interval", d.recovery_interval, 0.1, 3600),
    )
    t.unknown()
    return out


def _redis(t: _Table, env: Mapping[str, str]) -> RedisConfig:
    d = RedisConfig()
    url = t.string("url", None, max_len=1024)
    if url is not None and (not url.startswith(_REDIS_SCHEMES) or any(c.isspace() for c in url)):
        t.error("url", "must be a redis://, rediss:// or unix:// URL without spaces")
        url = None
    prefix = d.prefix
    if t.has("prefix"):
        v = t.raw("prefix")
        if not isinstance(v, str) or len(v) > 64 or any(c.isspace() for c in v) or _has_control(v):
            t.error(
                "prefix",
                f"must be a string of at most 64 characters without spaces, got {_show(v)}",
            )
        else:
            prefix = v
    out = RedisConfig(
        url=env.get(ENV_REDIS_URL) or url,
        data_dir=t.string("data_dir", d.data_dir, max_len=1024),
        prefix=prefix,
    )
    t.unknown()
    return out


def _freeswitch(t: _Table) -> FreeswitchConfig:
    d = FreeswitchConfig()
    if t.has("password"):
        t.raw("password")
        t.error(
            "password",
            "a literal password is not allowed in the config file; put it in the environment"
            " variable named by freeswitch.password_env (default FSACD_ESL_PASSWORD) or in a"
            " file named by freeswitch.password_file",
        )
    inbound = t.string("inbound", d.inbound)
    try:
        split_address(inbound)
    except ValueError as exc:
        t.error("inbound", f"{exc}, got {_show(inbound)}")
        inbound = d.inbound
    penv = t.string("password_env", None, max_len=128)
    if penv is not None and not _ENV_NAME.fullmatch(penv):
        t.error("password_env", f"must be an environment variable name, got {_show(penv)}")
    pfile = t.string("password_file", None, max_len=1024)
    if penv is not None and pfile is not None:
        t.error("password_file", "give either password_env or password_file, not both")
    region = t.string("default_region", d.default_region, max_len=8)
    if not numbers.supported_region(region.upper()):
        t.error(
            "default_region",
            f"must be an ISO 3166 alpha-2 region phonenumbers supports (e.g. DE, US, GB),"
            f" got {_show(region)}",
        )
        region = d.default_region
    out = FreeswitchConfig(
        inbound=inbound,
        password_env=None if pfile else (penv or d.password_env),
        password_file=pfile,
        default_region=region.upper(),
    )
    t.unknown()
    return out


def _queues(data: Any, errors: list[str]) -> dict[str, QueueConfig]:
    if data is None:
        errors.append("queues: at least one queue is required, e.g. [queues.support]")
        return {}
    if not isinstance(data, dict):
        errors.append(f"queues: must be a table of queues, got {_show(data)}")
        return {}
    if not data:
        errors.append("queues: at least one queue is required, e.g. [queues.support]")
    queues: dict[str, QueueConfig] = {}
    for name, body in data.items():
        path = f"queues.{_quote_key(name)}"
        if not QUEUE_NAME.fullmatch(name):
            errors.append(f"{path}: a queue name must be 1 to 64 letters, digits, _ or -")
            continue
        if not isinstance(body, dict):
            errors.append(f"{path}: must be a table, got {_show(body)}")
            continue
        queues[name] = _queue(name, _Table(body, path, errors))
    _check_overflow(queues, errors)
    return queues


def _queue(name: str, t: _Table) -> QueueConfig:
    d = QueueConfig(name=name)
    strategy = t.string("strategy", d.strategy, max_len=64)
    if strategy not in STRATEGIES:
        t.error("strategy", f"must be one of {', '.join(STRATEGIES)}, got {_show(strategy)}")
        strategy = d.strategy
    moh = t.string("moh", d.moh, max_len=1024)
    if "$" in moh:
        t.error(
            "moh",
            "must be a sound file or stream (e.g. local_stream://moh); ${...} is not expanded",
        )
        moh = d.moh
    answer_mode = t.string("answer_mode", d.answer_mode, max_len=16)
    if answer_mode not in ANSWER_MODES:
        t.error(
            "answer_mode", f"must be one of {', '.join(ANSWER_MODES)}, got {_show(answer_mode)}"
        )
        answer_mode = d.answer_mode
    number = t.string("number", None, max_len=32)
    if number is not None:
        n = numbers.normalise(number, "DE") if number.startswith("+") else None
        if n is None or n.e164 is None:
            t.error(
                "number", f"must be a valid E.164 number like +493012345678, got {_show(number)}"
            )
            number = None
        else:
            number = n.e164
    out = QueueConfig(
        name=name,
        strategy=strategy,
        ring_timeout=t.integer("ring_timeout", d.ring_timeout, 1, 3600, "seconds"),
        max_wait=t.seconds("max_wait", d.max_wait),
        overflow=t.string("overflow", None, max_len=64),
        wrap_up=t.seconds("wrap_up", d.wrap_up),
        max_no_answer=t.integer("max_no_answer", d.max_no_answer, 0, 1000),
        no_answer_delay=t.seconds("no_answer_delay", d.no_answer_delay),
        busy_delay=t.seconds("busy_delay", d.busy_delay),
        reject_delay=t.seconds("reject_delay", d.reject_delay),
        moh=moh,
        priority=t.integer("priority", d.priority, routing.PRIORITY_MIN, routing.PRIORITY_MAX),
        number=number,
        display_name=t.string("display_name", None, max_len=80),
        join_empty=_bool(t, "join_empty", d.join_empty),
        leave_empty=_bool(t, "leave_empty", d.leave_empty),
        max_length=t.integer("max_length", d.max_length, 0, 1_000_000),
        skip_busy_agents=_bool(t, "skip_busy_agents", d.skip_busy_agents),
        moh_segment=float(t.integer("moh_segment", int(d.moh_segment), 2, 3600, "seconds")),
        answer_mode=answer_mode,
        revoke_key=ivr.dtmf_key(t, "revoke_key", d.revoke_key),
        callback_prompt=_prompt(t, "callback_prompt", d.callback_prompt),
        callback_invalid_prompt=_prompt(t, "callback_invalid_prompt", d.callback_invalid_prompt),
        callback_confirmed_prompt=_prompt(
            t, "callback_confirmed_prompt", d.callback_confirmed_prompt
        ),
        **_queue_pop(t),
        **_queue_callerid(t),
        **_queue_ivr(t),
    )
    t.unknown()
    return out


def _prompt(t: _Table, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if not t.has(name):
        t.raw(name)
        return default
    got = ivr.check_prompt(t.raw(name))
    if isinstance(got, str):
        t.error(name, got)
        return default
    return got


def _region(t: _Table, name: str, default: str | None) -> str | None:
    region = t.string(name, default, max_len=8)
    if region is not None and not numbers.supported_region(region.upper()):
        t.error(
            name,
            f"must be an ISO 3166 alpha-2 region phonenumbers supports (e.g. DE, US, GB),"
            f" got {_show(region)}",
        )
        return default
    return region.upper() if region is not None else None


def _http_url(t: _Table, name: str) -> str | None:
    url = t.string(name, None, max_len=2048)
    if url is not None and (not url.startswith(_HTTP_SCHEMES) or any(c.isspace() for c in url)):
        t.error(name, "must be an http:// or https:// URL without spaces")
        return None
    return url


def _secret_source(t: _Table, stem: str, default_env: str | None) -> tuple[str | None, str | None]:
    """``{stem}_env`` / ``{stem}_file``: at most one; returns ``(env name, file)``."""
    env_name = t.string(f"{stem}_env", None, max_len=128)
    if env_name is not None and not _ENV_NAME.fullmatch(env_name):
        t.error(f"{stem}_env", f"must be an environment variable name, got {_show(env_name)}")
        env_name = None
    path = t.string(f"{stem}_file", None, max_len=1024)
    if env_name is not None and path is not None:
        t.error(f"{stem}_file", f"give either {stem}_env or {stem}_file, not both")
    if path is not None:
        return None, path
    return env_name or default_env, None


def _queue_pop(t: _Table) -> dict[str, Any]:
    """The screen-pop keys of a queue: region, pop_fields, webhook_*."""
    d = QueueConfig(name="-")
    out: dict[str, Any] = {"region": _region(t, "region", None)}
    if t.has("pop_fields"):
        v = t.raw("pop_fields")
        fields: list[str] = []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            t.error("pop_fields", f"must be an array of strings, got {_show(v)}")
        else:
            for x in v:
                if x not in POP_FIELDS and not _POP_CONTACT_FIELD.fullmatch(x):
                    t.error(
                        "pop_fields",
                        f"unknown field {_show(x)}; use {', '.join(POP_FIELDS)},"
                        " contact.FIELD or contact.*",
                    )
                elif x not in fields:
                    fields.append(x)
            out["pop_fields"] = tuple(fields)
    out["webhook_url"] = _http_url(t, "webhook_url")
    env_name, path = _secret_source(t, "webhook_secret", None)
    if out["webhook_url"] is not None and env_name is None and path is None:
        t.error(
            "webhook_url",
            "needs webhook_secret_env or webhook_secret_file (webhooks are always signed)",
        )
    out["webhook_secret_env"], out["webhook_secret_file"] = env_name, path
    out["webhook_timeout"] = t.seconds("webhook_timeout", d.webhook_timeout, 0.05, 30)
    return out


def _crm(t: _Table) -> CrmConfig | None:
    url = _http_url(t, "url")
    if url is None and not t.has("url"):
        t.error("url", 'is required in [crm], e.g. "https://crm.example/api/caller?e164={e164}"')
    if url is not None:
        rest = url.replace("{e164}", "").replace("{digits}", "")
        if rest == url:
            t.error("url", "must contain {e164} or {digits} where the caller number goes")
            url = None
        elif "{" in rest or "}" in rest:
            t.error("url", "may only contain the placeholders {e164} and {digits}")
            url = None
    d = CrmConfig(url="")
    token_env, token_file = _secret_source(t, "token", None)
    out = CrmConfig(
        url=url or "",
        timeout=t.seconds("timeout", d.timeout, 0.05, 10),
        cache_ttl=t.seconds("cache_ttl", d.cache_ttl, 0, 7 * DAY),
        miss_ttl=t.seconds("miss_ttl", d.miss_ttl, 0, 7 * DAY),
        token_env=token_env,
        token_file=token_file,
    )
    t.unknown()
    return out if url else None


def _history(t: _Table) -> HistoryConfig:
    d = HistoryConfig()
    salt_env, salt_file = _secret_source(t, "salt", d.salt_env)
    out = HistoryConfig(
        max_entries=t.integer("max_entries", d.max_entries, 0, 1000),
        ttl=t.seconds("ttl", d.ttl, 0, 3650 * DAY),
        salt_env=salt_env,
        salt_file=salt_file,
    )
    t.unknown()
    return out


def _check_overflow(queues: dict[str, QueueConfig], errors: list[str]) -> None:
    for name, q in queues.items():
        if q.overflow is None:
            continue
        key = f"queues.{name}.overflow"
        if q.overflow == name:
            errors.append(f"{key}: a queue can't overflow to itself")
        elif q.overflow not in queues:
            errors.append(f"{key}: no queue named {_show(q.overflow)}")
        else:
            chain = [name]
            nxt: str | None = q.overflow
            while nxt is not None and nxt in queues and nxt not in chain:
                chain.append(nxt)
                nxt = queues[nxt].overflow
            if nxt == name and name == min(chain):  # report each loop once
                errors.append(f"{key}: overflow chain loops: {' -> '.join([*chain, name])}")


# --- caller ID policy and verified numbers (docs/caller-id.md) ------------------------------

_GATEWAY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SAY_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z]{2,4})?")
_TTS_VOICE = re.compile(r"[A-Za-z0-9_.-]{1,64}\|[A-Za-z0-9_.-]{1,64}")
_E164_EXAMPLE = "+4922129191999"


def _bool(t: _Table, name: str, default: bool) -> bool:
    if not t.has(name):
        t.raw(name)
        return default
    v = t.raw(name)
    if not isinstance(v, bool):
        t.error(name, f"must be true or false, got {_show(v)}")
        return default
    return v


def _e164(t: _Table, name: str) -> str | None:
    """An E.164 number given as ``+...`` (stored normalised), else None with an error."""
    v = t.string(name, None, max_len=32)
    if v is None:
        return None
    n = numbers.normalise(v, "DE") if v.startswith("+") else None
    if n is None or n.e164 is None:
        t.error(name, f"must be a valid E.164 number like {_E164_EXAMPLE}, got {_show(v)}")
        return None
    return n.e164


def _choice(t: _Table, name: str, default: str, choices: tuple[str, ...]) -> str:
    v = t.string(name, default, max_len=64)
    if v not in choices:
        t.error(name, f"must be one of {', '.join(choices)}, got {_show(v)}")
        return default
    return v


def _gateway_template(t: _Table, name: str, default: str) -> str:
    v = t.string(name, default, max_len=256)
    rest = v.replace("{gw}", "").replace("{e164}", "")
    sample = v.replace("{gw}", "gw1").replace("{e164}", _E164_EXAMPLE)
    if "{e164}" not in v:
        t.error(name, f"must contain {{e164}} where the number goes, got {_show(v)}")
    elif "{" in rest or "}" in rest:
        t.error(name, "may only contain the placeholders {gw} and {e164}")
    elif problem := dialstring.contact_problem(sample):
        t.error(name, f"{problem}, got {_show(v)}")
    else:
        return v
    return default


def _queue_callerid(t: _Table) -> dict[str, Any]:
    """The caller-ID keys of a queue (docs/caller-id.md)."""
    d = QueueConfig(name="-")
    out: dict[str, Any] = {
        "agent_sees": _choice(t, "agent_sees", d.agent_sees, AGENT_SEES),
        "allow_network_number": _bool(t, "allow_network_number", d.allow_network_number),
        "customer_sees": _choice(t, "customer_sees", d.customer_sees, CUSTOMER_SEES),
        "pool_fixed": _e164(t, "pool_fixed"),
        "pool_existing": _e164(t, "pool_existing"),
        "pool_new": _e164(t, "pool_new"),
        "pool_callback": _bool(t, "pool_callback", d.pool_callback),
        "network_number": _e164(t, "network_number"),
        "gateway": t.string("gateway", None, max_len=64),
        "gateway_template": _gateway_template(t, "gateway_template", d.gateway_template),
    }
    if out["gateway"] is not None and not _GATEWAY.fullmatch(out["gateway"]):
        t.error("gateway", f"may only use letters, digits and _ . -, got {_show(out['gateway'])}")
        out["gateway"] = None
    countries: list[str] = []
    if t.has("network_only_countries"):
        v = t.raw("network_only_countries")
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            t.error("network_only_countries", f"must be an array of strings, got {_show(v)}")
        else:
            for x in v:
                code = x if x == "abroad" else x.upper()
                if code != "abroad" and not numbers.supported_region(code):
                    t.error(
                        "network_only_countries",
                        f'{_show(x)} is not an ISO 3166 alpha-2 region (e.g. "US", "GB")'
                        ' or "abroad"',
                    )
                elif code not in countries:
                    countries.append(code)
    out["network_only_countries"] = tuple(countries)
    return out


def _numbers(t: _Table) -> NumbersConfig:
    d = NumbersConfig()
    pai_host = t.string("pai_host", None, max_len=253)
    if pai_host is not None and not _HOST.fullmatch(pai_host):
        t.error("pai_host", f"must be a host name or IPv4 address, got {_show(pai_host)}")
        pai_host = None
    gateway = t.string("gateway", None, max_len=64)
    if gateway is not None and not _GATEWAY.fullmatch(gateway):
        t.error("gateway", f"may only use letters, digits and _ . -, got {_show(gateway)}")
        gateway = None
    say_language = t.string("say_language", d.say_language, max_len=16)
    if not _SAY_LANGUAGE.fullmatch(say_language):
        t.error("say_language", f'must be a language code like "en", got {_show(say_language)}')
        say_language = d.say_language
    tts_voice = t.string("tts_voice", d.tts_voice, max_len=130)
    if not _TTS_VOICE.fullmatch(tts_voice):
        t.error("tts_voice", f'must be ENGINE|VOICE like "flite|kal", got {_show(tts_voice)}')
        tts_voice = d.tts_voice
    sms_command: tuple[str, ...] | None = None
    if t.has("sms_command"):
        v = t.raw("sms_command")
        ok = isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)
        if not ok or any(_has_control(x) for x in v):
            t.error(
                "sms_command",
                "must be a non-empty array of strings (the program and its arguments, no shell),"
                ' e.g. ["/usr/local/bin/send-sms", "{number}"]',
            )
        else:
            sms_command = tuple(v)
    sms_webhook = _http_url(t, "sms_webhook")
    if sms_command is not None and sms_webhook is not None:
        t.error("sms_webhook", "give either sms_command or sms_webhook, not both")
    token_env, token_file = _secret_source(t, "sms_token", None)
    sms_text = t.string("sms_text", d.sms_text, max_len=300)
    if "{code}" not in sms_text:
        t.error("sms_text", "must contain {code} where the code goes")
        sms_text = d.sms_text
    out = NumbersConfig(
        network_number=_e164(t, "network_number"),
        pai_host=pai_host,
        gateway=gateway,
        gateway_template=_gateway_template(t, "gateway_template", d.gateway_template),
        code_ttl=t.seconds("code_ttl", d.code_ttl, 30, DAY),
        code_attempts=t.integer("code_attempts", d.code_attempts, 1, 20),
        code_digits=t.integer("code_digits", d.code_digits, 4, 12),
        resend_after=t.seconds("resend_after", d.resend_after, 0, DAY),
        valid_days=t.integer("valid_days", d.valid_days, 0, 3650, "days"),
        call_app=_choice(t, "call_app", d.call_app, ("say", "speak")),
        say_language=say_language,
        tts_voice=tts_voice,
        call_timeout=t.integer("call_timeout", d.call_timeout, 5, 300, "seconds"),
        sms_command=sms_command,
        sms_webhook=sms_webhook,
        sms_token_env=token_env,
        sms_token_file=token_file,
        sms_text=sms_text,
    )
    t.unknown()
    return out


def _check_callerid(
    queues: dict[str, QueueConfig], nums: NumbersConfig, errors: list[str]
) -> dict[str, QueueConfig]:
    """Cross-checks of the caller-ID keys; fills ``gateway``/``network_number`` from [numbers]."""
    out: dict[str, QueueConfig] = {}
    for name, q in queues.items():
        key = f"queues.{name}"
        if q.agent_sees == "queue" and q.number is None:
            errors.append(f'{key}.agent_sees: "queue" needs the queue\'s number (key number)')
        if q.customer_sees == "pool" and not (q.pool_fixed or (q.pool_existing and q.pool_new)):
            errors.append(
                f'{key}.customer_sees: "pool" needs pool_fixed, or both pool_existing and pool_new'
            )
        network = q.network_number or nums.network_number
        if q.customer_sees != "network" and network is None:
            errors.append(
                f'{key}.customer_sees: "{q.customer_sees}" needs the network number'
                " (numbers.network_number or queues.NAME.network_number) for P-Asserted-Identity"
            )
        if q.customer_sees != "network" and nums.pai_host is None:
            errors.append(
                f'{key}.customer_sees: "{q.customer_sees}" needs numbers.pai_host'
                " (the host of the P-Asserted-Identity URI)"
            )
        out[name] = replace(q, gateway=q.gateway or nums.gateway, network_number=network)
    return out


# --- recording consent and waiting (docs/ivr.md) --------------------------------------------


def _queue_ivr(t: _Table) -> dict[str, Any]:
    """The keys of a queue for recording consent, announcements, exit and callback keys."""
    d = QueueConfig(name="-")
    out: dict[str, Any] = {"recording": _choice(t, "recording", d.recording, consent.POLICIES)}
    path = t.string("recording_path", d.recording_path, max_len=512)
    if (problem := consent.check_template(path)) is not None:
        t.error("recording_path", f"{problem}, got {_show(path)}")
        path = d.recording_path
    out["recording_path"] = path
    notice = None
    if t.has("recording_notice"):
        got = ivr.check_prompt(t.raw("recording_notice"))
        if isinstance(got, str):
            t.error("recording_notice", got)
        else:
            notice = got
    else:
        t.raw("recording_notice")
        if out["recording"] != "off":
            t.error(
                "recording_notice",
                f'is required with recording = "{out["recording"]}":'
                " callers must hear that the call may be recorded",
            )
    out["recording_notice"] = notice
    out["consent_key"] = ivr.dtmf_key(t, "consent_key", d.consent_key)
    every = t.seconds("announce_every", d.announce_every, 0, 3600)
    if 0 < every < 10:
        t.error("announce_every", f"must be 0 (off) or at least 10 seconds, got {_num(every)}")
        every = d.announce_every
    out["announce_every"] = every
    out["exit_key"] = ivr.dtmf_key(t, "exit_key", None)
    exit_target = t.string("exit_target", None, max_len=128)
    if exit_target is not None:
        act = ivr.parse_action(exit_target)
        if isinstance(act, str):
            t.error("exit_target", act)
            exit_target = None
        elif act.kind == "callback":
            t.error("exit_target", "a callback is offered with callback_key, not as exit_target")
            exit_target = None
        else:
            exit_target = str(act)
    if t.has("exit_key") and not t.has("exit_target"):
        t.error("exit_target", "is required with exit_key: where the caller goes on pressing it")
    if t.has("exit_target") and not t.has("exit_key"):
        t.error("exit_key", "is required with exit_target: the key that leaves the queue")
    out["exit_target"] = exit_target
    out["callback_key"] = ivr.dtmf_key(t, "callback_key", None)
    if out["exit_key"] is not None and out["exit_key"] == out["callback_key"]:
        t.error("callback_key", "must differ from exit_key")
    out["callback_retries"] = t.integer("callback_retries", d.callback_retries, 0, 20)
    out["callback_retry_delay"] = t.seconds("callback_retry_delay", d.callback_retry_delay, 0, DAY)
    return out


def _check_queue_ivr(
    queues: dict[str, QueueConfig], menus: Mapping[str, ivr.Menu], errors: list[str]
) -> None:
    """``exit_target`` names an existing queue (not the same one) or menu."""
    for name, q in queues.items():
        if q.exit_target is None:
            continue
        act = ivr.parse_action(q.exit_target)
        key = f"queues.{name}.exit_target"
        if isinstance(act, str):
            continue
        if act.kind == "queue" and act.target == name:
            errors.append(f"{key}: leads back to this queue")
        elif act.kind == "queue" and act.target not in queues:
            errors.append(f"{key}: no queue named {_show(act.target)}")
        elif act.kind == "ivr" and act.target not in menus:
            errors.append(f"{key}: no menu named {_show(act.target)}")
