"""The registry of numbers the company may present as caller ID, in Redis (docs/caller-id.md).

A number may be shown to customers (``customer_sees = pool`` or ``agent``) only once it is
**verified**: someone who can answer it got a one-time code (a call through FreeSWITCH that
speaks it, or an SMS) and confirmed it (``fsacd numbers confirm``), or an operator marked it
(or its whole block) verified with a reason. Verifications expire after
``numbers.valid_days``. :meth:`VerifiedNumbers.snapshot` gives the call flow a cheap,
immutable view (one Redis ``GET`` per call while nothing changed).

Codes: ``numbers.code_digits`` random digits, valid ``numbers.code_ttl`` seconds, at most
``numbers.code_attempts`` tries, a new one at most every ``numbers.resend_after`` seconds.
Only a salted scrypt hash is stored; the code itself is never stored, logged or evented.

Writes are plain Redis commands in MULTI/EXEC transactions (no Lua script: nothing here takes
part in the matching), made by :class:`fsacd.state.verified.NumberStore`. Every change bumps
``numbers:version`` and appends an event (``number-*``) to the ``events`` stream. The
registry holds the company's own numbers only, never a caller's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import subprocess
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from fsacd.config import NumbersConfig
from fsacd.core import callerid, dialstring, numbers
from fsacd.secret import MIN_SALT, SecretError, read_secret
from fsacd.state.keys import Keys
from fsacd.state.verified import NumberStore
from fsacd.webclient import HttpFailure, http_request

log = logging.getLogger(__name__)

EXAMPLE = "+4922129191999"
#: How long the SMS sender's webhook may take, seconds.
SMS_WEBHOOK_TIMEOUT = 10.0
#: Shortest block prefix an operator may mark verified (digits after ``+``).
MIN_BLOCK_DIGITS = 6
#: scrypt cost of the code hash: ~16 MiB and tens of ms per try.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_E164 = re.compile(r"\+[1-9][0-9]{3,14}")
_SPECIAL = re.compile(r"\+[0-9]{3,15}")
_BLOCK = re.compile(rf"\+[1-9][0-9]{{{MIN_BLOCK_DIGITS - 1},14}}")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_CODE_FIELDS = (
    "code_hash",
    "code_salt",
    "code_expires_at",
    "code_attempts",
    "code_via",
)


class NumberError(ValueError):
    """A refused registry operation; the message is meant for the operator."""


class DeliveryError(NumberError):
    """The code could not be delivered (call not answered, SMS sender failed)."""


# --- the snapshot (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class NumberEntry:
    """One registered number. ``expires_at`` 0 = the verification never expires."""

    number: str
    status: str = "pending"  # pending | verified
    queues: tuple[str, ...] = ()
    agent: str = ""
    added_at: float = 0.0
    verified_at: float = 0.0
    expires_at: float = 0.0
    via: str = ""  # call | sms | operator
    by: str = ""
    reason: str = ""
    special: bool = False
    code_pending: bool = False
    code_expires_at: float = 0.0

    def state(self, now: float) -> str:
        """``verified``, ``expired`` or ``pending``."""
        if self.status != "verified":
            return "pending"
        if self.expires_at and now >= self.expires_at:
            return "expired"
        return "verified"

    def as_dict(self, now: float) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["queues"] = list(self.queues)
        d["state"] = self.state(now)
        if not (self.code_pending and self.code_expires_at > now):
            d["code_pending"], d["code_expires_at"] = False, 0.0
        return d


@dataclass(frozen=True)
class BlockEntry:
    """A number block (all numbers starting with ``prefix``) an operator marked verified."""

    prefix: str
    reason: str
    by: str
    at: float
    expires_at: float = 0.0

    def covers(self, number: str) -> bool:
        return number.startswith(self.prefix)

    def expired(self, now: float) -> bool:
        return bool(self.expires_at) and now >= self.expires_at

    def as_dict(self, now: float) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["state"] = "expired" if self.expired(now) else "verified"
        return d


@dataclass(frozen=True)
class VerifiedSnapshot:
    """An immutable view of the registry; :meth:`check` decides whether a number may be shown."""

    entries: Mapping[str, NumberEntry] = field(default_factory=dict)
    blocks: tuple[BlockEntry, ...] = ()
    version: int = 0

    def check(
        self,
        number: str,
        *,
        queue: str | None = None,
        agent: str | None = None,
        now: float | None = None,
    ) -> tuple[bool, str]:
        """``(True, how it is verified)`` or ``(False, why not)`` — reasons name no code."""
        now = time.time() if now is None else now
        entry = self.entries.get(number)
        if entry is not None:
            if queue and entry.queues and queue not in entry.queues:
                return False, f"is not assigned to queue {queue}"
            if agent and entry.agent and entry.agent != agent:
                return False, f"belongs to agent {entry.agent}"
            if entry.state(now) == "verified":
                return True, f"verified via {entry.via or '?'}"
        covering = sorted(
            (b for b in self.blocks if b.covers(number)), key=lambda b: -len(b.prefix)
        )
        for block in covering:
            if not block.expired(now):
                return True, f"in block {block.prefix} verified by an operator"
        if entry is not None:
            if entry.state(now) == "expired":
                return False, f"verification expired {_day(entry.expires_at)}"
            return False, "is not verified"
        if covering:
            return False, f"block {covering[0].prefix} verification expired"
        return False, "is not registered"

    def agent_number(
        self, agent_id: str, *, queue: str | None = None, now: float | None = None
    ) -> str | None:
        """A verified number assigned to ``agent_id`` (and allowed in ``queue``), or None."""
        now = time.time() if now is None else now
        for number in sorted(self.entries):
            e = self.entries[number]
            if e.agent == agent_id and self.check(number, queue=queue, agent=agent_id, now=now)[0]:
                return number
        return None


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


# --- pure helpers ----------------------------------------------------------------------------


def require_e164(text: str, region: str = "DE") -> str:
    """``text`` if it is a valid number in E.164 form, else :class:`NumberError` with an
    example of the right form (and the E.164 form of ``text`` when it can be read)."""
    text = (text or "").strip()
    if _E164.fullmatch(text) and numbers.normalise(text, region).e164 == text:
        return text
    hint = ""
    n = numbers.normalise(text, region)
    if n.e164:
        hint = f"; did you mean {n.e164}?"
    return _refuse(
        f"{text[:40]!r} is not a number in E.164 form: give + and the country code and"
        f" number, digits only, e.g. {EXAMPLE}{hint}"
    )


def _refuse(message: str) -> Any:
    raise NumberError(message)


def code_hash(code: str, salt: bytes, number: str) -> str:
    """Slow salted hash of a code (scrypt), hex."""
    return hashlib.scrypt(code.encode(), salt=salt + number.encode(), **_SCRYPT).hex()


def verify_call_command(
    number: str, code: str, settings: NumbersConfig, uuid: str | None = None
) -> str:
    """The ``originate`` command of a verification call (for ``api``/``bgapi``).

    ``originate {vars}sofia/gateway/GW/+E164 'sleep:1000,say:en number iterated 123456,...'
    inline``: FreeSWITCH calls the number from the network number and, once answered, speaks
    the code digit by digit three times (``say``, needs the sound files of the language) or
    with text-to-speech (``speak``, needs e.g. mod_flite), then hangs up. The number and code
    are digits only; the apps are given to the ``inline`` dialplan, quoted as one argument.
    """
    number = require_e164(number)
    if not code.isascii() or not code.isdigit():
        raise ValueError("a code is digits only")
    template = settings.gateway_template
    if "{gw}" in template and not settings.gateway:
        raise NumberError("numbers.gateway is not set: no way to place a verification call")
    endpoint = template.replace("{gw}", settings.gateway or "").replace("{e164}", number)
    problem = dialstring.contact_problem(endpoint)
    if problem:
        raise NumberError(f"numbers.gateway_template: the dial string {problem}")
    variables: dict[str, str] = {}
    if settings.network_number:
        variables.update(callerid.network_vars(settings.network_number, "Verification"))
    variables.update(
        {
            "fsacd_verify": "true",
            "originate_timeout": str(settings.call_timeout),
            "ignore_early_media": "true",
        }
    )
    if uuid is not None:
        if not uuid or not all(c.isalnum() or c == "-" for c in uuid) or len(uuid) > 64:
            raise ValueError("not a channel uuid")
        variables["origination_uuid"] = uuid
    spaced = " ".join(code)
    if settings.call_app == "speak":
        text = f"Your verification code is {spaced}. Again: {spaced}. Once more: {spaced}."
        say = [f"speak:{settings.tts_voice}|{text}"]
    else:
        say = [f"say:{settings.say_language} number iterated {code}", "sleep:1000"] * 3
    apps = ",".join(["sleep:1000", *say, "hangup"])
    return f"originate {callerid.var_block(variables)}{endpoint} '{apps}' inline"


def _read_secret(env_name: str | None, path: str | None, env: Mapping[str, str]) -> str | None:
    try:
        return read_secret(env_name, path, env, strict=True)
    except SecretError as exc:
        raise NumberError(str(exc)) from None


def number_salt(cfg: Any, env: Mapping[str, str] | None = None) -> bytes | None:
    """The salt for :func:`fsacd.core.callerid.hash_number`: the ``[history]`` salt, so one secret
    keys every hash of a hidden number and events, records and history agree
    (``history:h:{hash}`` uses the same HMAC). None if unset or shorter than 16 characters."""
    env = os.environ if env is None else env
    hist = getattr(cfg, "history", None)
    env_name = getattr(hist, "salt_env", None) if hist is not None else "FSACD_HISTORY_SALT"
    value = _read_secret(env_name, getattr(hist, "salt_file", None), env)
    if not value or len(value) < MIN_SALT:
        return None
    return value.encode("utf-8")


# --- the registry ----------------------------------------------------------------------------


class VerifiedNumbers:
    """The number registry. ``r`` must decode responses; ``settings`` is ``cfg.numbers``."""

    def __init__(
        self,
        r: Any,
        keys: Keys | None = None,
        settings: NumbersConfig | None = None,
        *,
        region: str = "DE",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys or Keys()
        self.db = NumberStore(r, self.keys, clock=clock)
        self.settings = settings or NumbersConfig()
        self.region = region
        self.clock = clock
        self._cache: VerifiedSnapshot | None = None

    # --- reading -----------------------------------------------------------------------------

    def get(self, number: str) -> NumberEntry | None:
        return _entry(self.db.get(number))

    def list(self) -> list[NumberEntry]:
        """Every registered number, sorted."""
        return [e for e in map(_entry, self.db.all()) if e is not None]

    def list_blocks(self) -> list[BlockEntry]:
        raw = self.db.blocks()
        return [_block(v) for _, v in sorted(raw.items())]

    def snapshot(self) -> VerifiedSnapshot:
        """The registry as of now; reloaded only when ``numbers:version`` changed."""
        version = self.db.version()
        cached = self._cache
        if cached is not None and cached.version == version:
            return cached
        snap = VerifiedSnapshot(
            entries={e.number: e for e in self.list()},
            blocks=tuple(self.list_blocks()),
            version=version,
        )
        self._cache = snap
        return snap

    # --- changes -----------------------------------------------------------------------------

    def add(
        self, number: str, *, queues: Iterable[str] = (), agent: str | None = None
    ) -> tuple[NumberEntry, bool]:
        """Register ``number`` (E.164 only) as pending, or add queues/agent to it.

        Returns the entry and whether it was created. The verification state is kept.
        """
        number = require_e164(number, self.region)
        queues = tuple(dict.fromkeys(_names(queues, "queue")))
        if agent is not None:
            _names([agent], "agent")
        now = self.clock()
        old = self.get(number)
        merged = tuple(dict.fromkeys([*(old.queues if old else ()), *queues]))
        fields = {"number": number, "queues": ",".join(merged)}
        if agent is not None:
            fields["agent"] = agent
        if old is None:
            fields.update({"status": "pending", "added_at": _fmt(now)})
        self.db.save(
            number,
            fields,
            event="number-added" if old is None else "number-updated",
            number=number,
            queues=",".join(merged),
            agent=agent or (old.agent if old else ""),
        )
        entry = self.get(number)
        assert entry is not None
        return entry, old is None

    def remove(self, number: str) -> None:
        """Forget a number (and any pending code). :class:`NumberError` if unknown."""
        if not self.db.exists(number):
            raise NumberError(f"{number} is not registered")
        self.db.delete(number, event="number-removed", number=number)

    def remove_block(self, prefix: str, *, by: str = "") -> None:
        if not self.db.block_exists(prefix):
            raise NumberError(f"no block {prefix} is marked verified")
        self.db.delete_block(prefix, event="number-block-removed", block=prefix, by=by)
        log.warning("number block %s: operator verification removed by %s", prefix, by or "?")

    def mark_verified(
        self,
        target: str,
        *,
        reason: str,
        by: str,
        block: bool = False,
        special: bool = False,
        days: int | None = None,
        queues: Iterable[str] = (),
        agent: str | None = None,
    ) -> NumberEntry | BlockEntry:
        """An operator's override: ``target`` (a number, or with ``block`` a prefix) counts as
        verified without a code. ``reason`` is required and goes to the log and events.

        ``special``: also accept a number the numbering plan does not know (``+`` and 3 to 15
        digits), e.g. a new range. ``days``: validity (default ``numbers.valid_days``, 0 =
        never expires).
        """
        reason = _reason(reason)
        by = dialstring.var_value(by or "")[:64] or "operator"
        target = (target or "").strip()
        now = self.clock()
        days = self.settings.valid_days if days is None else days
        if days < 0 or days > 3650:
            raise NumberError("--days must be 0 (never expires) to 3650")
        expires = now + days * 86400 if days else 0.0
        if block:
            if not _BLOCK.fullmatch(target):
                raise NumberError(
                    f"{target[:40]!r} is not a block prefix: give + and at least"
                    f" {MIN_BLOCK_DIGITS} digits, e.g. +4922129191 for +4922129191000..999"
                )
            if phonenumbers.region_code_for_country_code(_country_code(target)) == "ZZ":
                raise NumberError(f"{target} does not start with a country code")
            entry = BlockEntry(target, reason, by, now, expires)
            self.db.save_block(
                target,
                json.dumps(entry.__dict__, sort_keys=True),
                event="number-marked-verified",
                block=target,
                reason=reason,
                by=by,
                expires_at=expires,
            )
            log.warning(
                "number block %s marked verified by %s without a check: %s", target, by, reason
            )
            return entry
        if special:
            if not _SPECIAL.fullmatch(target):
                raise NumberError(
                    f"{target[:40]!r}: a special number is + and 3 to 15 digits, e.g. {EXAMPLE}"
                )
            is_special = numbers.normalise(target, self.region).e164 != target
        else:
            target = require_e164(target, self.region)
            is_special = False
        queues = tuple(_names(queues, "queue"))
        if agent is not None:
            _names([agent], "agent")
        old = self.get(target)
        merged = tuple(dict.fromkeys([*(old.queues if old else ()), *queues]))
        fields = {
            "number": target,
            "status": "verified",
            "queues": ",".join(merged),
            "verified_at": _fmt(now),
            "expires_at": _fmt(expires),
            "via": "operator",
            "by": by,
            "reason": reason,
            "special": "1" if is_special else "0",
        }
        if old is None:
            fields["added_at"] = _fmt(now)
        if agent is not None:
            fields["agent"] = agent
        self.db.save(
            target,
            fields,
            drop=_CODE_FIELDS,
            event="number-marked-verified",
            number=target,
            reason=reason,
            by=by,
            expires_at=expires,
        )
        log.warning("number %s marked verified by %s without a check: %s", target, by, reason)
        entry = self.get(target)
        assert entry is not None
        return entry

    # --- verification ------------------------------------------------------------------------

    def issue_code(self, number: str, via: str) -> str:
        """A new one-time code for ``number`` (replacing any earlier one), stored hashed.

        The plain code is returned for delivery only. :class:`NumberError` if the number is
        not registered or the last code was sent less than ``resend_after`` seconds ago.
        """
        h = self.db.get(number)
        if not h:
            raise NumberError(f"{number} is not registered: fsacd numbers add {number} first")
        now = self.clock()
        last = float(h.get("code_sent_at") or 0)
        wait = last + self.settings.resend_after - now
        if last and wait > 0:
            raise NumberError(
                f"a code was sent {now - last:.0f}s ago: wait {wait:.0f}s before asking again"
            )
        n = self.settings.code_digits
        code = "".join(secrets.choice("0123456789") for _ in range(n))
        salt = secrets.token_bytes(16)
        self.db.set_code(
            number,
            {
                "code_hash": code_hash(code, salt, number),
                "code_salt": salt.hex(),
                "code_expires_at": _fmt(now + self.settings.code_ttl),
                "code_attempts": "0",
                "code_sent_at": _fmt(now),
                "code_via": via,
            },
        )
        return code

    def _drop_code(self, number: str, event: str, *, delivered: bool = True, **fields: Any) -> None:
        """Void the pending code. An undelivered code does not count for ``resend_after``."""
        extra = () if delivered else ("code_sent_at",)
        self.db.drop_fields(number, (*_CODE_FIELDS, *extra), event=event, number=number, **fields)

    def void_unspoken(self, number: str, uuid: str, reason: str) -> None:
        """The call was answered but the code was not spoken (:func:`code_spoken`): the
        code is void and may be asked for again at once."""
        self._drop_code(
            number, "number-code-failed", delivered=False, via="call", uuid=uuid, reason=reason
        )

    def verify_via_call(self, number: str, esl: Any) -> dict[str, Any]:
        """Call ``number`` through FreeSWITCH (``esl``: a connected
        :class:`fsacd.esl.session.InboundClient`) and speak a new code.

        Waits until the call is answered (``bgapi originate``); :class:`DeliveryError` if it
        is not (the code is then void).
        """
        from fsacd.esl.session import ESLError

        number = require_e164(number, self.region)
        self._require_registered(number)
        # a misconfigured gateway fails here, before a code is issued
        verify_call_command(number, "0" * self.settings.code_digits, self.settings)
        code = self.issue_code(number, "call")
        command = verify_call_command(number, code, self.settings, str(uuidlib.uuid4()))
        try:
            body = esl.bgapi(command, timeout=self.settings.call_timeout + 15)
        except ESLError as exc:
            reason = str(exc)[:200]
            self._drop_code(
                number, "number-code-failed", delivered=False, via="call", reason=reason
            )
            raise DeliveryError(f"the verification call could not be placed: {exc}") from None
        body = (body or "").strip()
        if not body.startswith("+OK"):
            reason = _redact(body, code)[:120] or "no answer from FreeSWITCH"
            self._drop_code(
                number, "number-code-failed", delivered=False, via="call", reason=reason
            )
            raise DeliveryError(f"the verification call failed: {reason}")
        uuid = body[3:].strip()
        self._sent(number, "call", uuid=uuid)
        return {"number": number, "via": "call", "uuid": uuid, **self._code_info(number)}

    def verify_via_sms(
        self,
        number: str,
        *,
        env: Mapping[str, str] | None = None,
        run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    ) -> dict[str, Any]:
        """Hand a new code to ``numbers.sms_command`` (argv, no shell; JSON on stdin) or POST
        it to ``numbers.sms_webhook`` (fsacd/webclient.py: no redirect is followed, no proxy
        from the environment is used, so the code and the token go to that URL only).
        :class:`DeliveryError` if that fails."""
        number = require_e164(number, self.region)
        self._require_registered(number)
        s = self.settings
        if not s.sms_command and not s.sms_webhook:
            raise NumberError(
                "no SMS sender configured: set numbers.sms_command or numbers.sms_webhook"
            )
        env = os.environ if env is None else env
        token = _read_secret(s.sms_token_env, s.sms_token_file, env) if s.sms_webhook else None
        code = self.issue_code(number, "sms")
        text = s.sms_text.replace("{code}", code)
        payload = json.dumps({"number": number, "code": code, "text": text}).encode()
        try:
            if s.sms_command:
                argv = [_fill(a, number, code, text) for a in s.sms_command]
                try:
                    proc = run(argv, input=payload, capture_output=True, timeout=30, check=False)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise DeliveryError(f"sms_command failed: {_redact(str(exc), code)}") from None
                if proc.returncode != 0:
                    err = (proc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
                    last = _redact(err[-1], code)[:200] if err else ""
                    raise DeliveryError(
                        f"sms_command exited with {proc.returncode}" + (f": {last}" if last else "")
                    )
            else:
                headers = {"Content-Type": "application/json"}
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                try:
                    status, _ = http_request(
                        s.sms_webhook or "",
                        timeout=SMS_WEBHOOK_TIMEOUT,
                        data=payload,
                        headers=headers,
                        max_bytes=64 * 1024,
                    )
                except HttpFailure as exc:
                    if exc.status is None:
                        raise DeliveryError(f"sms_webhook failed: {exc.reason}") from None
                    status = exc.status
                if not 200 <= status < 300:
                    raise DeliveryError(f"sms_webhook answered HTTP {status}")
        except DeliveryError as exc:
            reason = str(exc)[:200]
            self._drop_code(number, "number-code-failed", delivered=False, via="sms", reason=reason)
            raise
        self._sent(number, "sms")
        return {"number": number, "via": "sms", **self._code_info(number)}

    def confirm(self, number: str, code: str) -> NumberEntry:
        """Check ``code``; on success the number is verified (for ``numbers.valid_days``).

        :class:`NumberError` for no pending code, an expired one, a wrong one (with the tries
        left) or too many tries (the code is then void).
        """
        number = require_e164(number, self.region)
        h = self.db.get(number)
        if not h:
            raise NumberError(f"{number} is not registered")
        if not h.get("code_hash"):
            raise NumberError(
                f"no code is pending for {number}: ask for one with"
                f" fsacd numbers verify {number} --via call|sms"
            )
        now = self.clock()
        if now >= float(h.get("code_expires_at") or 0):
            self._drop_code(number, "number-code-failed", reason="expired")
            raise NumberError("the code has expired: ask for a new one (fsacd numbers verify)")
        attempts = self.db.count_attempt(number)
        limit = self.settings.code_attempts
        if attempts > limit:
            self._drop_code(number, "number-code-failed", reason="too many attempts")
            raise NumberError("too many wrong codes: ask for a new one (fsacd numbers verify)")
        given = re.sub(r"[\s-]", "", code or "")
        salt = bytes.fromhex(h.get("code_salt") or "")
        good = given.isascii() and given.isdigit() and len(given) <= 32
        if not good or not hmac.compare_digest(code_hash(given, salt, number), h["code_hash"]):
            left = limit - attempts
            if left <= 0:
                self._drop_code(number, "number-code-failed", reason="too many attempts")
                raise NumberError("wrong code, and no tries left: ask for a new one")
            self.db.event("number-code-failed", number=number, reason="wrong code", left=left)
            raise NumberError(f"wrong code ({left} {'try' if left == 1 else 'tries'} left)")
        days = self.settings.valid_days
        expires = now + days * 86400 if days else 0.0
        done = self.db.verify(
            number,
            h["code_hash"],
            {
                "status": "verified",
                "verified_at": _fmt(now),
                "expires_at": _fmt(expires),
                "via": h.get("code_via") or "",
                "by": "",
                "reason": "",
            },
            drop=_CODE_FIELDS,
            event="number-verified",
            number=number,
            via=h.get("code_via"),
            expires_at=expires,
        )
        if not done:
            raise NumberError("the code was replaced or used meanwhile: ask for a new one")
        log.info("number %s verified via %s", number, h.get("code_via") or "?")
        entry = self.get(number)
        assert entry is not None
        return entry

    # --- plumbing ----------------------------------------------------------------------------

    def _require_registered(self, number: str) -> None:
        if not self.db.exists(number):
            raise NumberError(f"{number} is not registered: fsacd numbers add {number} first")

    def _code_info(self, number: str) -> dict[str, Any]:
        h = self.db.get(number)
        return {
            "code_expires_at": float(h.get("code_expires_at") or 0),
            "attempts": self.settings.code_attempts,
        }

    def _sent(self, number: str, via: str, **fields: Any) -> None:
        self.db.event("number-code-sent", number=number, via=via, **fields)
        log.info("number %s: verification code sent via %s", number, via)


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _fill(arg: str, number: str, code: str, text: str) -> str:
    return arg.replace("{number}", number).replace("{code}", code).replace("{text}", text)


def _redact(text: str, code: str) -> str:
    return text.replace(code, "*" * len(code)) if code else text


def _names(values: Iterable[str], what: str) -> list[str]:
    out = []
    for v in values:
        if not isinstance(v, str) or not _NAME.fullmatch(v):
            raise NumberError(f"bad {what} name {str(v)[:40]!r}")
        out.append(v)
    return out


def _reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise NumberError("a reason is required (--reason): it is logged and evented")
    if len(text) > 200 or any(ord(c) < 32 for c in text):
        raise NumberError("the reason must be at most 200 characters without control characters")
    return text


def _country_code(prefix: str) -> int:
    digits = prefix[1:]
    for n in (1, 2, 3):
        if phonenumbers.region_code_for_country_code(int(digits[:n])) != "ZZ":
            return int(digits[:n])
    return 0


def _entry(h: Mapping[str, str]) -> NumberEntry | None:
    if not h or not h.get("number"):
        return None
    return NumberEntry(
        number=h["number"],
        status=h.get("status") or "pending",
        queues=tuple(q for q in (h.get("queues") or "").split(",") if q),
        agent=h.get("agent") or "",
        added_at=float(h.get("added_at") or 0),
        verified_at=float(h.get("verified_at") or 0),
        expires_at=float(h.get("expires_at") or 0),
        via=h.get("via") or "",
        by=h.get("by") or "",
        reason=h.get("reason") or "",
        special=h.get("special") == "1",
        code_pending=bool(h.get("code_hash")),
        code_expires_at=float(h.get("code_expires_at") or 0),
    )


def _block(raw: str) -> BlockEntry:
    d = json.loads(raw)
    return BlockEntry(
        prefix=d["prefix"],
        reason=d.get("reason", ""),
        by=d.get("by", ""),
        at=float(d.get("at") or 0),
        expires_at=float(d.get("expires_at") or 0),
    )


#: Shortest ``speak`` of the code that can have been heard (a failed one ends at once).
MIN_SPEAK_SECONDS = 0.5
#: The answered call's first event (its ``sleep``) comes at once; none within this: give up.
QUIET_LIMIT = 2.0


def code_spoken(esl: Any, uuid: str, app: str, timeout: float = 20.0) -> tuple[bool | None, str]:
    """Watch the verification call ``uuid`` (``esl`` an InboundClient subscribed to
    CHANNEL_EXECUTE, CHANNEL_EXECUTE_COMPLETE and CHANNEL_HANGUP_COMPLETE before the call was
    placed) until its first ``say``/``speak`` of the code ends: ``(True, "")`` if FreeSWITCH
    played it, ``(False, why)`` if not, ``(None, why)`` if that cannot be told.

    ``say`` plays the digit files with ``switch_ivr_play_file``, which sets
    ``playback_samples`` only for a file it played; a fresh channel has none before. ``speak``
    reports nothing: a TTS engine that is missing makes it end at once, so a speak shorter
    than :data:`MIN_SPEAK_SECONDS` was not heard.
    """
    end = time.time() + timeout
    quiet_until = time.time() + QUIET_LIMIT
    started: float | None = None
    seen = False
    while time.time() < end:
        if not seen and time.time() > quiet_until:
            return None, "FreeSWITCH sent no events for the call"
        ev = esl.next_event(max(0.05, min(end, quiet_until) - time.time()))
        if ev is None:
            continue
        if ev.name in ("SOCKET_CLOSED", "DISCONNECT"):
            return None, "the event socket closed"
        if ev.get("Unique-ID") != uuid:
            continue
        seen = True
        if ev.name == "CHANNEL_HANGUP_COMPLETE":
            return None, f"the call ended ({ev.get('Hangup-Cause') or '?'}) before the code"
        if ev.get("Application") != app:
            continue
        stamp = _float(ev.get("Event-Date-Timestamp")) / 1e6
        if ev.name == "CHANNEL_EXECUTE":
            started = stamp
        elif ev.name == "CHANNEL_EXECUTE_COMPLETE":
            if app == "say":
                if _float(ev.get("variable_playback_samples")) > 0:
                    return True, ""
                return False, "say played no sound (the say module or its digit files missing)"
            took = stamp - started if started else 0.0
            if took >= MIN_SPEAK_SECONDS:
                return True, ""
            return False, f"speak ended after {took:.2f}s (the TTS engine missing)"
    return None, f"the code was not spoken within {timeout:.0f}s"


def _float(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0
