"""Caller numbers to E.164 with phonenumbers (pure; never logs a number).

Decisions, so nobody has to guess:

- ``None``, empty or blank input → ``empty``; ``anonymous``, ``unknown``, ``private``,
  ``restricted``, ``unavailable``, ``withheld`` (any case, also as a SIP/tel user part)
  → ``withheld``.
- ``tel:`` and ``sip:``/``sips:`` URIs (optionally in ``<...>``, with a display name before):
  the user part is used, URI parameters (``;...``) are dropped.
- Separators ``space - . ( ) /`` are allowed; a ``+`` only at the start.
- Unicode decimal digits of any script (Arabic-Indic, fullwidth, ...) are read as the
  digits they stand for; any letter or other symbol makes the number ``invalid``: there is
  no vanity-letter conversion (``1-800-FLOWERS`` is invalid).
- National forms are read in the configured region (trunk prefix, the region's own
  international prefix). A number starting with ``00`` that the region does not read as valid
  is tried once more as ``+`` (``00`` is the international prefix in most of the world).
- A number is ``valid`` only if phonenumbers says it is possible *and* valid; local forms
  without an area code, short codes (``112``) and unassigned ranges are ``invalid``.
- Input longer than :data:`MAX_INPUT` characters, or a number part longer than :data:`MAX_LEN`,
  is ``invalid``; control characters (tab, newline, ...) make it ``invalid`` too.
  :attr:`Number.raw` keeps at most :data:`RAW_KEEP` characters of the input.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import phonenumbers

#: The region national numbers are read in when the config names none
#: (``freeswitch.default_region``), and the region used to check numbers already in E.164
#: form (where the region does not matter).
DEFAULT_REGION = "DE"
#: Longer input is invalid without parsing (the whole input, e.g. a SIP URI).
MAX_INPUT = 256
#: Longer numbers (the part left after taking a URI's user part) are invalid.
MAX_LEN = 64
#: How much of the input :attr:`Number.raw` keeps.
RAW_KEEP = 128

Status = Literal["valid", "invalid", "withheld", "empty"]

WITHHELD = frozenset({"anonymous", "unknown", "private", "restricted", "unavailable", "withheld"})

# space, hyphen and Unicode dashes/minus, dot, parentheses, slash (after NFKC, so NBSP is a space)
_SEPARATORS = re.compile(r"[ \-.()/\u2010-\u2015\u2212]")
_DIGITS_ONLY = re.compile(r"\+?[0-9]+")
_URI = re.compile(r"^(?:.*<)?\s*(sips?|tel):([^>]*)>?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Number:
    """A normalised caller number. ``e164`` is set only when ``status == "valid"``."""

    raw: str
    e164: str | None
    status: Status
    reason: str


def supported_region(region: str) -> bool:
    """True if phonenumbers knows ``region`` (ISO 3166 alpha-2, upper case)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def normalise(raw: str | None, region: str) -> Number:
    """Normalise ``raw`` as dialled/presented in ``region``. Never raises for bad input.

    Raises ``ValueError`` only for an unsupported ``region`` (the config validates it).
    """
    if not supported_region(region):
        raise ValueError(f"unsupported region {region!r}")
    if raw is None:
        return Number("", None, "empty", "no number")
    kept = raw[:RAW_KEEP]
    text = raw.strip()
    if not text:
        return Number(kept, None, "empty", "no number")
    if len(raw) > MAX_INPUT:
        return Number(kept, None, "invalid", f"longer than {MAX_INPUT} characters")
    text = _user_part(text)
    if len(text) > MAX_LEN:
        return Number(kept, None, "invalid", f"longer than {MAX_LEN} characters")
    if text.lower() in WITHHELD:
        return Number(kept, None, "withheld", "number withheld")
    if not text:
        return Number(kept, None, "empty", "no number")
    digits = _digits(text)
    if digits is None:
        return Number(kept, None, "invalid", "contains letters or symbols")
    e164, reason = _parse(digits, region)
    if e164 is None:
        return Number(kept, None, "invalid", reason)
    return Number(kept, e164, "valid", "ok")


def _user_part(text: str) -> str:
    """The user part of a ``sip:``/``sips:``/``tel:`` URI, else ``text`` unchanged."""
    m = _URI.match(text)
    if not m:
        return text
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme != "tel":
        rest = rest.split("@", 1)[0] if "@" in rest else rest
    return rest.split(";", 1)[0].strip()


def _digits(text: str) -> str | None:
    """``text`` with separators removed and any script's digits as ASCII; None if not a number."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in _SEPARATORS.sub("", text):
        if ch == "+" or "0" <= ch <= "9":
            out.append(ch)
        elif unicodedata.category(ch) == "Nd":
            out.append(str(unicodedata.decimal(ch)))
        else:
            return None
    s = "".join(out)
    return s if _DIGITS_ONLY.fullmatch(s) else None


def _parse(digits: str, region: str) -> tuple[str | None, str]:
    e164, reason = _try(digits, region)
    if e164 is None and digits.startswith("00") and len(digits) > 2:
        retry, _ = _try("+" + digits[2:], region)
        if retry is not None:
            return retry, "ok"
    return e164, reason


def _try(digits: str, region: str) -> tuple[str | None, str]:
    try:
        n = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None, "not a phone number"
    if not phonenumbers.is_possible_number(n):
        return None, "not a possible number (wrong length)"
    if not phonenumbers.is_valid_number(n):
        return None, "not a valid number (unassigned range, short code or missing area code)"
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164), "ok"
