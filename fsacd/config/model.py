"""The config as frozen dataclasses: one per section, :class:`Config` holding them all.

Every value here has been validated by the section readers (:mod:`fsacd.config.loader`);
the defaults are those of docs/config.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fsacd.config.reader import DAY
from fsacd.core import consent
from fsacd.core.ivr import Menu
from fsacd.core.numbers import DEFAULT_REGION

DEFAULT_GATEWAY_TEMPLATE = "sofia/gateway/{gw}/{e164}"
#: ``answer_mode`` values of a queue.
ANSWER_MODES = ("answer", "pre-answer")

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


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:8084"
    controller_id: str = ""
    max_calls: int = 1000
    command_timeout: float = 10.0
    drain_timeout: float = 30.0
    lease: float = 15.0
    recovery_interval: float = 5.0
    #: networks FreeSWITCH connects from (``IP`` or ``IP/PREFIX``, normalised); None: the
    #: loopback networks and the host of ``[freeswitch] inbound``
    freeswitch_addresses: tuple[str, ...] | None = None
    #: other sources beyond loopback: ``refuse`` or ``limit``
    other_sources: str = "refuse"
    source_max_calls: int = 10
    source_max_rate: float = 5.0
    #: 1-99: run under SCHED_RR at this priority (fsacd/acd/priority.py); 0: normal
    realtime_priority: int = 0

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
    default_region: str = DEFAULT_REGION
    #: the calls' channel events come over one inbound connection (fsacd/esl/callfeed.py)
    shared_events: bool = True
    #: the inbound event sockets of the other switches that send calls here (call-event
    #: feeds only; commands go to ``inbound``)
    other_switches: tuple[str, ...] = ()

    @property
    def inbound_address(self) -> tuple[str, int]:
        """``inbound`` as ``(host, port)``."""
        return split_address(self.inbound)

    @property
    def feed_addresses(self) -> list[tuple[str, int]]:
        """Every switch's inbound event socket, ``inbound`` first."""
        return [self.inbound_address, *(split_address(a) for a in self.other_switches)]


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
    #: monitoring (docs/monitoring.md): a call answered within this many seconds of entering
    #: the queue counts towards the service level
    service_level_seconds: float = 20.0

    @property
    def screen_pop_fields(self) -> tuple[str, ...]:
        """``pop_fields``, or :data:`DEFAULT_POP_FIELDS` when the queue gives none."""
        return DEFAULT_POP_FIELDS if self.pop_fields is None else self.pop_fields


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
class Thresholds:
    """Colours of the wallboard: a figure turns amber at ``warn`` and red at ``alert``."""

    wait_warn: float = 30.0
    wait_alert: float = 60.0
    #: service level (a fraction) below which it is amber / red
    sl_warn: float = 0.8
    sl_alert: float = 0.6
    waiting_warn: int = 3
    waiting_alert: int = 10


@dataclass(frozen=True)
class WebConfig:
    """``fsacd web`` (``[web]``): the wallboard, /agent/ID and /metrics from Redis."""

    listen: str = "127.0.0.1:8090"
    token_env: str | None = "FSACD_WEB_TOKEN"
    token_file: str | None = None
    refresh: float = 1.0
    title: str = "fsacd"
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class HttpConfig:
    """``fsacd serve``'s own endpoint (``[http]``): /metrics, /healthz, /readyz; off when
    ``listen`` is None."""

    listen: str | None = None


@dataclass(frozen=True)
class MonitoringConfig:
    """``[stats]`` (what "today" is), ``[events]`` (the stream's cap), ``[log]``."""

    #: IANA time zone of "today" in figures ("local" = the machine's)
    timezone: str = "local"
    #: events stream: approximate maximum length (XADD MAXLEN ~) and age (XTRIM MINID, s)
    events_max_length: int = 100000
    events_max_age: float = 0.0
    #: log lines: "text" or "json" (JSON lines with call ids)
    log_format: str = "text"


@dataclass(frozen=True)
class SupervisorConfig:
    """``[supervisor]``: the phone ``fsacd listen|whisper|barge`` rings (fsacd/config/floor.py)."""

    contact: str | None = None
    ring_timeout: int = 30


#: Break reasons when ``[agents] break_reasons`` is not set.
DEFAULT_BREAK_REASONS = ("break", "lunch", "meeting", "training", "technical")


@dataclass(frozen=True)
class AgentsConfig:
    """``[agents]``: the break reasons ``fsacd agent break --reason`` accepts."""

    break_reasons: tuple[str, ...] = DEFAULT_BREAK_REASONS


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
    ivr: dict[str, Menu] = field(default_factory=dict)
    #: monitoring: the wallboard, serve's endpoint, figures, events, logs (docs/monitoring.md)
    web: WebConfig = field(default_factory=WebConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)


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
