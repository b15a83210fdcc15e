"""Caller ID (docs/caller-id.md): a queue's caller-ID keys, ``[numbers]``, their cross-checks."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from fsacd.config.model import NumbersConfig, QueueConfig
from fsacd.config.reader import DAY, E164_EXAMPLE, Table, e164_key
from fsacd.core import dialstring, numbers
from fsacd.core.callerid import AGENT_SEES, CUSTOMER_SEES
from fsacd.core.text import has_control, show

_GATEWAY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SAY_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z]{2,4})?")
_TTS_VOICE = re.compile(r"[A-Za-z0-9_.-]{1,64}\|[A-Za-z0-9_.-]{1,64}")


def _gateway_template(t: Table, name: str, default: str) -> str:
    v = t.string(name, default, max_len=256)
    rest = v.replace("{gw}", "").replace("{e164}", "")
    sample = v.replace("{gw}", "gw1").replace("{e164}", E164_EXAMPLE)
    if "{e164}" not in v:
        t.error(name, f"must contain {{e164}} where the number goes, got {show(v)}")
    elif "{" in rest or "}" in rest:
        t.error(name, "may only contain the placeholders {gw} and {e164}")
    elif problem := dialstring.contact_problem(sample):
        t.error(name, f"{problem}, got {show(v)}")
    else:
        return v
    return default


def queue_callerid(t: Table) -> dict[str, Any]:
    """The caller-ID keys of a queue (docs/caller-id.md)."""
    d = QueueConfig(name="-")
    out: dict[str, Any] = {
        "agent_sees": t.choice("agent_sees", d.agent_sees, AGENT_SEES),
        "allow_network_number": t.boolean("allow_network_number", d.allow_network_number),
        "customer_sees": t.choice("customer_sees", d.customer_sees, CUSTOMER_SEES),
        "pool_fixed": e164_key(t, "pool_fixed"),
        "pool_existing": e164_key(t, "pool_existing"),
        "pool_new": e164_key(t, "pool_new"),
        "pool_callback": t.boolean("pool_callback", d.pool_callback),
        "network_number": e164_key(t, "network_number"),
        "gateway": t.string("gateway", None, max_len=64),
        "gateway_template": _gateway_template(t, "gateway_template", d.gateway_template),
    }
    if out["gateway"] is not None and not _GATEWAY.fullmatch(out["gateway"]):
        t.error("gateway", f"may only use letters, digits and _ . -, got {show(out['gateway'])}")
        out["gateway"] = None
    countries: list[str] = []
    if t.has("network_only_countries"):
        v = t.raw("network_only_countries")
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            t.error("network_only_countries", f"must be an array of strings, got {show(v)}")
        else:
            for x in v:
                code = x if x == "abroad" else x.upper()
                if code != "abroad" and not numbers.supported_region(code):
                    t.error(
                        "network_only_countries",
                        f'{show(x)} is not an ISO 3166 alpha-2 region (e.g. "US", "GB")'
                        ' or "abroad"',
                    )
                elif code not in countries:
                    countries.append(code)
    out["network_only_countries"] = tuple(countries)
    return out


def read_numbers(t: Table) -> NumbersConfig:
    d = NumbersConfig()
    pai_host = t.string("pai_host", None, max_len=253)
    if pai_host is not None and not _HOST.fullmatch(pai_host):
        t.error("pai_host", f"must be a host name or IPv4 address, got {show(pai_host)}")
        pai_host = None
    gateway = t.string("gateway", None, max_len=64)
    if gateway is not None and not _GATEWAY.fullmatch(gateway):
        t.error("gateway", f"may only use letters, digits and _ . -, got {show(gateway)}")
        gateway = None
    say_language = t.string("say_language", d.say_language, max_len=16)
    if not _SAY_LANGUAGE.fullmatch(say_language):
        t.error("say_language", f'must be a language code like "en", got {show(say_language)}')
        say_language = d.say_language
    tts_voice = t.string("tts_voice", d.tts_voice, max_len=130)
    if not _TTS_VOICE.fullmatch(tts_voice):
        t.error("tts_voice", f'must be ENGINE|VOICE like "flite|kal", got {show(tts_voice)}')
        tts_voice = d.tts_voice
    sms_command: tuple[str, ...] | None = None
    if t.has("sms_command"):
        v = t.raw("sms_command")
        ok = isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)
        if not ok or any(has_control(x) for x in v):
            t.error(
                "sms_command",
                "must be a non-empty array of strings (the program and its arguments, no shell),"
                ' e.g. ["/usr/local/bin/send-sms", "{number}"]',
            )
        else:
            sms_command = tuple(v)
    sms_webhook = t.http_url("sms_webhook")
    if sms_command is not None and sms_webhook is not None:
        t.error("sms_webhook", "give either sms_command or sms_webhook, not both")
    token_env, token_file = t.secret_source("sms_token", None)
    sms_text = t.string("sms_text", d.sms_text, max_len=300)
    if "{code}" not in sms_text:
        t.error("sms_text", "must contain {code} where the code goes")
        sms_text = d.sms_text
    out = NumbersConfig(
        network_number=e164_key(t, "network_number"),
        pai_host=pai_host,
        gateway=gateway,
        gateway_template=_gateway_template(t, "gateway_template", d.gateway_template),
        code_ttl=t.seconds("code_ttl", d.code_ttl, 30, DAY),
        code_attempts=t.integer("code_attempts", d.code_attempts, 1, 20),
        code_digits=t.integer("code_digits", d.code_digits, 4, 12),
        resend_after=t.seconds("resend_after", d.resend_after, 0, DAY),
        valid_days=t.integer("valid_days", d.valid_days, 0, 3650, "days"),
        call_app=t.choice("call_app", d.call_app, ("say", "speak")),
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


def check_callerid(
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
