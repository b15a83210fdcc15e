"""Caller-ID policy per queue (pure: no sockets, no Redis). docs/caller-id.md explains it.

Two directions:

- **Inbound** (a call to an agent): :func:`agent_leg_vars` gives the variables of the agent's
  leg (``origination_caller_id_number`` / ``_name``, ``origination_privacy``) from the queue's
  ``agent_sees`` (``caller``, ``queue``, ``transferring-agent``, ``anonymous``) and what the
  agent's phone shows (:class:`Presentation`). A caller who withheld the number is shown as
  anonymous whatever the policy, unless the queue sets ``allow_network_number``.
  :func:`caller_is_hidden` says whether fsacd may store the caller's plain number at all;
  :func:`hash_number` gives the salted hash stored instead.
- **Outbound** (a call to a customer): :func:`customer_leg_vars` gives the variables of the
  customer's leg from ``customer_sees`` (``network``, ``pool``, ``agent``, ``anonymous``), and
  :func:`outbound_dial_string` the gateway dial string. Only verified numbers are presented
  (a :class:`fsacd.verified.registry.VerifiedSnapshot` decides); otherwise the call falls back
  to the network number and the returned reason says why.

What each variable set puts on the SIP wire was captured from a real FreeSWITCH
(``shared/esl-transcripts/sip-caller-id-headers.md``):

- network: ``sip_cid_type=pid`` + ``origination_privacy=screen`` → From and
  P-Asserted-Identity both carry the network number, ``Privacy: none``;
- pool / agent (CLIP no screening): ``sip_cid_type=none`` + the chosen number in From +
  an explicit ``sip_h_P-Asserted-Identity`` with the network number (``pid`` would build PAI
  from the displayed number);
- anonymous (CLIR): ``sip_cid_type=none``, From ``"Anonymous" <sip:anonymous@…>``, explicit
  PAI with the network number and ``sip_h_Privacy=id`` (``origination_privacy=hide_number``
  alone still leaves the number in From).

Every value that ends up in a dial string is filtered (:func:`fsacd.core.dialstring.var_value`,
:func:`fsacd.core.dialstring.number_value`) or built from validated parts only. Nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import phonenumbers

from fsacd.core import dialstring, numbers

#: What agents see of a call (``queues.NAME.agent_sees``) and customers of a call out
#: (``queues.NAME.customer_sees``); docs/caller-id.md.
AGENT_SEES = ("caller", "queue", "transferring-agent", "anonymous")
CUSTOMER_SEES = ("network", "pool", "agent", "anonymous")

#: What a hidden number is presented as (From user part, and the Presentation's name).
ANONYMOUS_NUMBER = "anonymous"
ANONYMOUS_NAME = "Anonymous"
#: The agent leg's ``origination_privacy`` for a shown and for a hidden caller.
PRIVACY_SHOWN = "screen"
PRIVACY_HIDDEN = "hide_name:hide_number"
#: Channel variable a dialplan may set to name the transferring agent (wins over SIP data).
TRANSFER_VAR = "variable_fsacd_transfer_from"

_TRUE = frozenset({"true", "yes", "on", "1"})
_PRIVACY_OFF = frozenset({"", "no", "none", "false", "off", "0"})
_SIP_PRIVACY_HIDE = frozenset({"id", "user", "header", "critical"})
_JUNK_NAMES = numbers.WITHHELD | {"unknown name", "anonymous anonymous"}
_USER = re.compile(r"[A-Za-z0-9+*#._-]{1,32}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_VAR_NAME = re.compile(r"[A-Za-z0-9_]{1,64}|sip_h_[A-Za-z0-9-]{1,64}")
_HEADER_VALUE = re.compile(r"[A-Za-z0-9.+@:<>;_-]{1,300}")
_E164 = re.compile(r"\+[1-9][0-9]{3,14}")


class QueuePolicy(Protocol):
    """What this module reads of a queue's config (a ``fsacd.config.QueueConfig`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def number(self) -> str | None: ...
    @property
    def display_name(self) -> str | None: ...
    @property
    def agent_sees(self) -> str: ...
    @property
    def allow_network_number(self) -> bool: ...
    @property
    def customer_sees(self) -> str: ...
    @property
    def network_number(self) -> str | None: ...
    @property
    def network_only_countries(self) -> tuple[str, ...]: ...
    @property
    def pool_fixed(self) -> str | None: ...
    @property
    def pool_existing(self) -> str | None: ...
    @property
    def pool_new(self) -> str | None: ...
    @property
    def pool_callback(self) -> bool: ...
    @property
    def gateway(self) -> str | None: ...
    @property
    def gateway_template(self) -> str: ...


class VerifiedLookup(Protocol):
    """What :func:`customer_leg_vars` needs of a verified-number snapshot."""

    def check(
        self, number: str, *, queue: str | None = None, agent: str | None = None
    ) -> tuple[bool, str]: ...

    def agent_number(self, agent_id: str, *, queue: str | None = None) -> str | None: ...


@dataclass(frozen=True)
class Presentation:
    """What the agent's phone shows. ``number`` is None when no number is shown."""

    number: str | None
    name: str | None
    hidden: bool
    reason: str


# --- the caller ------------------------------------------------------------------------------


def _flag(data: Mapping[str, str], key: str) -> bool:
    return (data.get(key) or "").strip().lower() in _TRUE


def caller_withheld(call_data: Mapping[str, str], caller: numbers.Number | None = None) -> bool:
    """True if the caller withheld the number (CLIR), by any of the signs FreeSWITCH gives.

    ``Caller-Privacy-Hide-Number: true`` (set by ``Privacy: id`` or an RPID ``privacy=``, or
    the ``privacy`` application), a ``privacy`` channel variable, a SIP ``Privacy`` header of
    ``id``/``user``/``header``, or a caller number like ``anonymous``.
    """
    if _flag(call_data, "Caller-Privacy-Hide-Number"):
        return True
    if (call_data.get("variable_privacy") or "").strip().lower() not in _PRIVACY_OFF:
        return True
    for key in ("variable_sip_Privacy", "variable_sip_i_privacy"):
        tokens = re.split(r"[;,\s]+", (call_data.get(key) or "").lower())
        if _SIP_PRIVACY_HIDE.intersection(tokens):
            return True
    raw = call_data.get("Caller-Caller-ID-Number")
    if raw is not None and numbers.normalise(raw, numbers.DEFAULT_REGION).status == "withheld":
        return True
    return caller is not None and caller.status == "withheld"


def caller_is_hidden(call_data: Mapping[str, str], queue_cfg: QueuePolicy) -> bool:
    """True when fsacd may store no plain caller number for this call (not in Redis, events
    or logs): the queue is ``anonymous``, or the caller withheld the number and the queue
    does not set ``allow_network_number``. Store :func:`hash_number` instead."""
    if queue_cfg.agent_sees == "anonymous":
        return True
    return caller_withheld(call_data) and not queue_cfg.allow_network_number


def network_caller(call_data: Mapping[str, str], region: str) -> numbers.Number:
    """The caller's number as the network gave it, **ignoring** privacy flags.

    ``Caller-Caller-ID-Number`` (sofia fills it from P-Asserted-Identity when there is one,
    also with ``Privacy: id``), else the ``sip_P-Asserted-Identity`` variable, else
    ``Caller-ANI``. Pass the result as ``caller`` to :func:`agent_leg_vars`, which decides
    whether it may be shown; use :func:`caller_is_hidden` before storing it anywhere.
    """
    first: numbers.Number | None = None
    for key in ("Caller-Caller-ID-Number", "variable_sip_P-Asserted-Identity", "Caller-ANI"):
        raw = call_data.get(key)
        if raw is None:
            continue
        text = raw.strip()
        if "@" in text and ":" not in text.split("@", 1)[0]:
            text = "sip:" + text  # "user@host" (a profile's paid_type user-domain)
        n = numbers.normalise(text, region)
        if n.status in ("valid", "invalid"):
            return n
        first = first or n
    return first or numbers.normalise(None, region)


def hash_number(e164: str, salt: bytes | str) -> str:
    """Salted hash of a number for events and records of hidden calls (HMAC-SHA256, hex).

    Same number and salt → same hash, so repeat callers can be counted; without the salt the
    number can't be recovered by trying all numbers. ``ValueError`` for an empty salt.
    """
    key = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    if not key:
        raise ValueError("hash_number needs a non-empty salt")
    return hmac.new(key, e164.encode("utf-8"), hashlib.sha256).hexdigest()


def caller_record_fields(
    call_data: Mapping[str, str],
    caller: numbers.Number,
    queue_cfg: QueuePolicy,
    salt: bytes | str | None,
) -> dict[str, str]:
    """The caller fields of the ``call:{id}`` record, privacy applied.

    Hidden (see :func:`caller_is_hidden`): ``number``, ``number_raw`` and ``name`` are empty,
    ``number_status`` is ``hidden``, ``number_hash`` is :func:`hash_number` (empty without a
    salt). Else the E.164 number, status and the caller's name, plus the hash when a salt is
    given (so hidden and shown calls of one number can be counted together).
    """
    digest = hash_number(caller.e164, salt) if caller.e164 and salt else ""
    if caller_is_hidden(call_data, queue_cfg):
        return {
            "number": "",
            "number_raw": "",
            "number_status": "hidden",
            "name": "",
            "number_hash": digest,
        }
    return {
        "number": caller.e164 or "",
        "number_raw": dialstring.var_value(caller.raw)[:64],
        "number_status": caller.status,
        "name": _caller_name(call_data, shown=queue_cfg.allow_network_number) or "",
        "number_hash": digest,
    }


def _caller_name(call_data: Mapping[str, str], *, shown: bool) -> str | None:
    """The caller's name, filtered; None if hidden by a privacy flag, empty or junk."""
    if not shown and _flag(call_data, "Caller-Privacy-Hide-Name"):
        return None
    name = dialstring.var_value(call_data.get("Caller-Caller-ID-Name") or "")[:80].strip()
    if not name or name.lower() in _JUNK_NAMES:
        return None
    return name


def transferring_agent(call_data: Mapping[str, str]) -> str | None:
    """Who transferred this call to the queue (a SIP user / extension), or None.

    From, in order: the ``fsacd_transfer_from`` variable (set by the dialplan), the
    Referred-By of a blind SIP transfer (``sip_h_Referred-By``, ``sip_referred_by_user``,
    ``sip_referred_by``, ``sip_referred_by_uri``), the transferring phone of an attended
    transfer (``transfer_source`` = ``EPOCH:UUID:att_xfer:USER@HOST/USER@HOST``). A blind
    ``transfer`` by the dialplan (``bl_xfer``) names only the target, not who transferred.
    """
    for key in (
        TRANSFER_VAR,
        "variable_sip_h_Referred-By",
        "variable_sip_referred_by_user",
        "variable_sip_referred_by",
        "variable_sip_referred_by_uri",
    ):
        user = _uri_user(call_data.get(key))
        if user:
            return user
    source = call_data.get("variable_transfer_source") or ""
    parts = source.split(":", 3)
    if len(parts) == 4 and parts[2] == "att_xfer":
        return _uri_user(parts[3].split("/", 1)[0])
    return None


def _uri_user(value: str | None) -> str | None:
    """The user part of ``<sip:user@host;…>``, ``sip:user@host``, ``user@host`` or ``user``."""
    if not value:
        return None
    text = value.strip()
    m = re.search(r"(?:sips?|tel):([^@>;\s]+)", text, re.IGNORECASE)
    user = m.group(1) if m else text.split("@", 1)[0].strip().strip("<>\"'")
    return user if _USER.fullmatch(user) else None


# --- inbound: the agent's leg ----------------------------------------------------------------


def agent_leg_vars(
    policy: str | None,
    call_data: Mapping[str, str],
    caller: numbers.Number,
    queue_cfg: QueuePolicy,
) -> tuple[dict[str, str], Presentation]:
    """Variables for the agent leg (``[...]`` of the bridge) and what the agent sees.

    ``policy``: an ``agent_sees`` value, or None for the queue's. ``caller``: the caller's
    number as the network gave it (:func:`network_caller`), even if withheld — this function
    decides what is shown. Every value is safe for a dial string as is (idempotent under
    :func:`fsacd.core.dialstring.var_value`). ``ValueError`` for an unknown policy.
    """
    policy = policy or queue_cfg.agent_sees
    if policy not in AGENT_SEES:
        raise ValueError(f"agent_sees must be one of {', '.join(AGENT_SEES)}, got {policy!r}")
    if policy == "anonymous":
        return _hidden("anonymous queue: no number is shown or stored")
    if policy == "queue":
        number = dialstring.number_value(queue_cfg.number) or dialstring.var_value(queue_cfg.name)
        name = dialstring.var_value(queue_cfg.display_name or queue_cfg.name)
        return _shown(number, name or number, "the queue's own number")
    prefix = ""
    if policy == "transferring-agent":
        who = transferring_agent(call_data)
        if who:
            return _shown(who, f"Transfer from {who}", f"transferred by {who}")
        prefix = "not a transfer: "
    return _caller_presentation(call_data, caller, queue_cfg, prefix)


def _caller_presentation(
    call_data: Mapping[str, str], caller: numbers.Number, queue_cfg: QueuePolicy, prefix: str
) -> tuple[dict[str, str], Presentation]:
    withheld = caller_withheld(call_data, caller)
    allowed = queue_cfg.allow_network_number
    if withheld and not allowed:
        return _hidden(prefix + "the caller withheld the number")
    name = _caller_name(call_data, shown=allowed)
    if caller.e164:
        why = "the caller's number" + (
            " (withheld, shown because the queue sets allow_network_number)" if withheld else ""
        )
        return _shown(caller.e164, name or caller.e164, prefix + why)
    if withheld:
        return _hidden(prefix + "the caller withheld the number and the network gave none")
    digits = dialstring.number_value(caller.raw)
    if caller.status == "invalid" and digits.lstrip("+") and digits == (caller.raw or "").strip():
        # a short internal number such as an extension: shown as it came
        why = prefix + f"the caller's number as sent ({caller.reason})"
        return _shown(digits, name or digits, why)
    if caller.status == "invalid":
        # never a number made up from what is left of garbled text (the screen pop says
        # "no number" too); the agent sees that one came that cannot be read
        why = prefix + f"the caller's number cannot be read ({caller.reason})"
        return _shown("unknown", name or "Unknown", why, show_number=False)
    reason = prefix + "the caller sent no number"
    return _shown("unknown", name or "Unknown", reason, show_number=False)


def _shown(
    text: str, name: str, reason: str, *, show_number: bool = True
) -> tuple[dict[str, str], Presentation]:
    """A shown presentation: ``text`` in From (``unknown`` counts as no number shown)."""
    text = dialstring.var_value(text)
    name = dialstring.var_value(name)
    leg = {
        "origination_caller_id_number": text,
        "origination_caller_id_name": name,
        "origination_privacy": PRIVACY_SHOWN,
    }
    return leg, Presentation(text if show_number else None, name, False, reason)


def _hidden(reason: str) -> tuple[dict[str, str], Presentation]:
    leg = {
        "origination_caller_id_number": ANONYMOUS_NUMBER,
        "origination_caller_id_name": ANONYMOUS_NAME,
        "origination_privacy": PRIVACY_HIDDEN,
        "origination_ani": ANONYMOUS_NUMBER,
    }
    return leg, Presentation(None, ANONYMOUS_NAME, True, reason)


# --- outbound: the customer's leg ------------------------------------------------------------


def customer_leg_vars(
    queue_cfg: QueuePolicy,
    *,
    destination: numbers.Number,
    customer: Mapping[str, Any] | None,
    verified: VerifiedLookup,
    agent: Mapping[str, Any] | None,
    callback_of: str | None,
    network_number: str | None,
    host: str | None,
) -> tuple[dict[str, str], str]:
    """Variables for the customer's leg of a call out, and the reason (for the event stream).

    - ``destination``: the customer's number (must be valid: ``ValueError`` otherwise).
    - ``customer``: the customer record, or None/empty for a new customer (``pool`` rule).
    - ``verified``: a snapshot of the verified numbers (:meth:`VerifiedNumbers.snapshot`).
    - ``agent``: the agent placing the call (``id``, optional ``number``, ``name``).
    - ``callback_of``: for a callback, the number the customer originally called.
    - ``network_number`` (E.164) / ``host``: the trunk's own number and the host of the
      P-Asserted-Identity URI (``numbers.pai_host``). None → the queue's ``network_number``.

    A ``pool``/``agent`` number that is not verified (or expired, or not assigned to this
    queue/agent) is never presented: the call falls back to ``network`` and the reason says
    why. Countries in ``network_only_countries`` (``"abroad"``: another country code than
    the network number's) get ``network`` too. ``anonymous`` never falls back.
    """
    policy = queue_cfg.customer_sees
    if policy not in CUSTOMER_SEES:
        raise ValueError(f"customer_sees must be one of {', '.join(CUSTOMER_SEES)}")
    net = _valid_e164(network_number or queue_cfg.network_number)
    if net is None:
        raise ValueError(
            f"queue {queue_cfg.name}: no valid network number"
            " (numbers.network_number or queues.NAME.network_number)"
        )
    if destination.e164 is None or _valid_e164(destination.e164) is None:
        raise ValueError(f"the destination is not a valid number ({destination.reason})")
    name = dialstring.var_value(queue_cfg.display_name or "")
    if policy == "network":
        return network_vars(net, name), "network number (the trunk's own)"
    pai_host = _pai_host(host)
    if policy == "anonymous":
        return _clir_vars(net, pai_host), "anonymous: number withheld from the callee (CLIR)"
    country = _network_only(queue_cfg, destination.e164, net)
    if country:
        return network_vars(net, name), (
            f"presentation to {country} is not reliable: fell back to network"
        )
    agent_id = str((agent or {}).get("id") or "") or None
    if policy == "agent":
        label = f"agent {agent_id}" if agent_id else "agent"
        chosen = _valid_e164((agent or {}).get("number"))
        if chosen is None and agent_id:
            chosen = verified.agent_number(agent_id, queue=queue_cfg.name)
        if chosen is None:
            return network_vars(net, name), f"{label} has no direct number: fell back to network"
        agent_name = dialstring.var_value((agent or {}).get("name") or "")
        name = agent_name or name
        ok, why = verified.check(chosen, queue=queue_cfg.name, agent=agent_id)
    else:
        chosen, label = _pool_choice(queue_cfg, customer, callback_of)
        if chosen is None:
            return network_vars(net, name), f"{label}: fell back to network"
        ok, why = verified.check(chosen, queue=queue_cfg.name)
        label = f"{label} number"
    if not ok:
        return network_vars(net, name), f"{label} {chosen} {why}: fell back to network"
    leg = {
        "fsacd_cid": policy,
        "sip_cid_type": "none",
        "origination_privacy": "none",
        "origination_caller_id_number": chosen,
        "origination_caller_id_name": name or chosen,
        "sip_h_P-Asserted-Identity": f"<sip:{net}@{pai_host}>",
    }
    return leg, f"{label} {chosen} ({why}): CLIP no screening, network number in PAI"


def _valid_e164(value: object) -> str | None:
    """``value`` if it is a valid number in E.164 form (``+`` and digits), else None."""
    if not isinstance(value, str) or not _E164.fullmatch(value):
        return None
    n = numbers.normalise(value, numbers.DEFAULT_REGION)
    return value if n.e164 == value else None


def _pai_host(host: str | None) -> str:
    if not host or not _HOST.fullmatch(host):
        raise ValueError("numbers.pai_host must be set to a host name for P-Asserted-Identity")
    return host


def network_vars(net: str, name: str) -> dict[str, str]:
    """The customer leg shows the network number ``net`` (From and PAI, screened)."""
    return {
        "fsacd_cid": "network",
        "sip_cid_type": "pid",
        "origination_privacy": "screen",
        "origination_caller_id_number": net,
        "origination_caller_id_name": name or net,
    }


def _clir_vars(net: str, host: str) -> dict[str, str]:
    return {
        "fsacd_cid": "anonymous",
        "sip_cid_type": "none",
        "origination_privacy": PRIVACY_HIDDEN,
        "origination_caller_id_name": ANONYMOUS_NAME,
        "origination_caller_id_number": ANONYMOUS_NUMBER,
        "sip_h_P-Asserted-Identity": f"<sip:{net}@{host}>",
        "sip_h_Privacy": "id",
    }


def _network_only(queue_cfg: QueuePolicy, dest: str, net: str) -> str | None:
    """The destination's region if the queue presents only the network number there."""
    codes = queue_cfg.network_only_countries
    if not codes:
        return None
    parsed = phonenumbers.parse(dest)
    region = phonenumbers.region_code_for_number(parsed) or "ZZ"
    if region in codes:
        return region
    if "abroad" in codes and parsed.country_code != phonenumbers.parse(net).country_code:
        return f"{region} (abroad)"
    return None


def _pool_choice(
    queue_cfg: QueuePolicy, customer: Mapping[str, Any] | None, callback_of: str | None
) -> tuple[str | None, str]:
    """The pool number for this call and the rule that chose it."""
    if callback_of and queue_cfg.pool_callback:
        number = _valid_e164(callback_of)
        if number is None:
            return None, "callback: the originally called number is not a valid E.164 number"
        return number, "callback (originally called)"
    if queue_cfg.pool_fixed:
        return queue_cfg.pool_fixed, "fixed pool"
    if customer:
        return queue_cfg.pool_existing, "existing-customer pool"
    return queue_cfg.pool_new, "new-customer pool"


# --- the dial string -------------------------------------------------------------------------


def var_block(variables: Mapping[str, str]) -> str:
    """``{a=b,...}`` for the customer leg: ``sip_h_*`` names allowed, values filtered.

    ``sip_h_*`` values must be plain header values we built (``<sip:+49…@host>``, ``id``):
    ``ValueError`` otherwise; other values go through :func:`fsacd.core.dialstring.var_value`.
    Values with spaces are quoted (``'Sales Team'``) so the string also survives the space
    splitting of the ``originate`` API command.
    """
    parts = []
    for name, value in variables.items():
        if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
            raise ValueError(f"bad channel variable name {name!r}")
        if name.startswith("sip_h_"):
            text = str(value)
            if not _HEADER_VALUE.fullmatch(text) or ":_:" in text:
                raise ValueError(f"unsafe value for {name}")
        else:
            text = dialstring.var_value(value)
        if " " in text:
            text = f"'{text}'"
        parts.append(f"{name}={text}")
    return "{" + ",".join(parts) + "}" if parts else ""


def gateway_endpoint(queue_cfg: QueuePolicy, destination: numbers.Number) -> str:
    """The queue's ``gateway_template`` filled in: ``sofia/gateway/GW/+E164``."""
    if destination.e164 is None or _valid_e164(destination.e164) is None:
        raise ValueError(f"the destination is not a valid number ({destination.reason})")
    template = queue_cfg.gateway_template
    if "{gw}" in template and not queue_cfg.gateway:
        raise ValueError(
            f"queues.{queue_cfg.name}.gateway: not set (gateway_template needs it;"
            " or set numbers.gateway)"
        )
    endpoint = template.replace("{gw}", queue_cfg.gateway or "").replace(
        "{e164}", dialstring.number_value(destination.e164)
    )
    problem = dialstring.contact_problem(endpoint)
    if problem:
        raise ValueError(f"queues.{queue_cfg.name}.gateway_template: the dial string {problem}")
    return endpoint


def outbound_dial_string(
    queue_cfg: QueuePolicy, destination: numbers.Number, vars: Mapping[str, str]
) -> str:
    """``{vars}sofia/gateway/GW/+E164`` for ``bridge`` (or ``originate``), escaped.

    ``vars`` usually come from :func:`customer_leg_vars`; add others (``origination_uuid``,
    ``leg_timeout``, ...) as needed. ``ValueError`` for an invalid destination, a missing
    gateway or an unsafe variable.
    """
    return var_block(vars) + gateway_endpoint(queue_cfg, destination)
