"""Contact records in Redis for the screen pop, and their CSV import (docs/screen-pop.md).

A contact is a flat record: ``id``, the standard fields (:data:`STANDARD_FIELDS`), any number
of free-form fields, and ``numbers``: a list of ``{"label", "number"}`` with every number in
E.164. One number may belong to several contacts (a company switchboard); the pop lists them
all.

Redis (docs/redis.md; written by :class:`fsacd.state.contacts.ContactStore`): ``contact:{id}``
hash (``numbers`` as JSON), ``contacts`` set of ids, ``contacts:number:{e164}`` set of contact
ids per number. Every change of one contact and its index entries is one MULTI/EXEC under
WATCH, so the index never points at a missing number.

Nothing here logs a number or a contact field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fsacd.core import numbers
from fsacd.core.numbers import Number
from fsacd.state.base import Batch, Reply
from fsacd.state.contacts import ContactStore
from fsacd.state.keys import Keys

#: The fields every contact may have besides ``id`` and ``numbers``, in display order.
STANDARD_FIELDS = ("name", "company", "status", "language", "tier", "notes", "tickets")
#: Field names that are not data columns.
RESERVED = frozenset({"numbers", "updated_at", "source"})
#: Other spellings of the standard fields (after :func:`canonical_name`).
ALIASES = {
    "contact_id": "id",
    "full_name": "name",
    "contact_name": "name",
    "company_name": "company",
    "organisation": "company",
    "organization": "company",
    "customer_status": "status",
    "lang": "language",
    "value_tier": "tier",
    "note": "notes",
    "comment": "notes",
    "comments": "notes",
    "open_tickets": "tickets",
}
#: Column names that hold phone numbers: ``phone``, ``mobile2``, ``work_phone``, ``fax_1``, ...
NUMBER_COLUMN = re.compile(
    r"(?:[^\W\d_]+_)?(?:phone|mobile|cell|tel|telephone|fax|landline|switchboard|direct)"
    r"(?:_?\d+)?"
    r"|(?:number|msisdn)(?:_?\d+)?"
)
#: Several numbers in one cell are separated by ``;``, ``|`` or a line break.
NUMBER_SPLIT = re.compile(r"[;|\r\n]+")
#: What a contact id may look like (it is part of a key name).
CONTACT_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_FIELD_NAME = re.compile(r"\w{1,64}")
#: Longest value kept per field (longer ones are cut, with a warning on import).
MAX_VALUE = 4000
#: Most fields per contact.
MAX_FIELDS = 100
#: Most numbers per contact.
MAX_NUMBERS = 20
#: Most contacts one lookup returns (a switchboard with more reports the total).
MAX_MATCHES = 20
#: Contacts written per MULTI/EXEC during an import.
CHUNK = 200


class ImportFileError(ValueError):
    """The file as a whole can't be imported (no header, no id column, duplicate columns)."""


def canonical_name(name: str) -> str:
    """A column or field name as stored: case-folded, NFKC, runs of other characters → ``_``.

    ``"Phone 2"`` → ``phone_2``; ``"E-Mail"`` → ``e_mail``; ``"Straße"`` → ``strasse``.
    """
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    return re.sub(r"[\W_]+", "_", text).strip("_")


def classify(name: str, id_column: str = "id", number_columns: Iterable[str] = ()) -> tuple:
    """What a canonical column name holds: ``("id",)``, ``("field", NAME)``,
    ``("number", LABEL)``, ``("extra", NAME)`` or ``("reserved", NAME)``."""
    if name == id_column:
        return ("id",)
    std = ALIASES.get(name, name)
    if std == "id":
        return ("reserved", name)  # an id column that is not the chosen one
    if std in STANDARD_FIELDS:
        return ("field", std)
    if name in number_columns or NUMBER_COLUMN.fullmatch(name):
        return ("number", name)
    if name in RESERVED or not _FIELD_NAME.fullmatch(name):
        return ("reserved", name)
    return ("extra", name)


def clean_value(value: str) -> str:
    """A field value as stored: CRLF → LF, control characters other than LF/tab removed,
    ends trimmed (not cut; see :data:`MAX_VALUE`)."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(
        ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    )
    return text.strip()


def split_numbers(cell: str) -> list[str]:
    return [p.strip() for p in NUMBER_SPLIT.split(cell) if p.strip()]


def decode(h: Mapping[str, str]) -> dict[str, Any]:
    """A ``contact:{id}`` hash → contact dict (``numbers`` decoded, ``updated_at`` a float),
    fields in a stable order: id, standard fields, numbers, free-form fields by name."""
    out: dict[str, Any] = {k: h[k] for k in ("id", *STANDARD_FIELDS) if k in h}
    try:
        out["numbers"] = json.loads(h.get("numbers") or "[]")
    except ValueError:
        out["numbers"] = []
    out.update((k, h[k]) for k in sorted(h) if k not in out)
    if "updated_at" in out:
        try:
            out["updated_at"] = float(out["updated_at"])
        except ValueError:
            out.pop("updated_at")
    return out


def _encode(contact: Mapping[str, Any], now: float) -> dict[str, str]:
    h = {k: str(v) for k, v in contact.items() if k not in RESERVED and v not in (None, "")}
    h["numbers"] = json.dumps(list(contact.get("numbers") or []), separators=(",", ":"))
    h["updated_at"] = f"{now:.3f}"
    return h


def _e164s(contact: Mapping[str, Any]) -> set[str]:
    return {n["number"] for n in contact.get("numbers") or [] if n.get("number")}


def check_contact(contact: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a contact dict before it is stored; ``ValueError`` names the problem."""
    cid = contact.get("id")
    if not isinstance(cid, str) or not CONTACT_ID.fullmatch(cid):
        raise ValueError("a contact id must be 1 to 64 of A-Z a-z 0-9 _ . @ -")
    out: dict[str, Any] = {"id": cid}
    for k, v in contact.items():
        if k in ("id", "numbers") or v in (None, ""):
            continue
        if k in RESERVED or not _FIELD_NAME.fullmatch(k):
            raise ValueError(f"bad contact field name {k[:70]!r}")
        out[k] = str(v)[:MAX_VALUE]
    if len(out) > MAX_FIELDS:
        raise ValueError(f"a contact may have at most {MAX_FIELDS} fields")
    nums = []
    seen: set[str] = set()
    for n in contact.get("numbers") or []:
        e164 = n.get("number") if isinstance(n, Mapping) else None
        if not isinstance(e164, str) or not re.fullmatch(r"\+[1-9][0-9]{5,15}", e164):
            raise ValueError("contact numbers must be E.164 (+ and 6 to 16 digits)")
        if e164 not in seen:
            seen.add(e164)
            nums.append({"label": str(n.get("label") or "phone")[:64], "number": e164})
    if len(nums) > MAX_NUMBERS:
        raise ValueError(f"a contact may have at most {MAX_NUMBERS} numbers")
    out["numbers"] = nums
    return out


class Contacts:
    """The contacts: validation and decoding here, Redis in :class:`ContactStore`. ``r`` (the
    Redis connection, decoding responses) and ``keys`` are handed to that store."""

    def __init__(self, r: Any, keys: Keys) -> None:
        self.db = ContactStore(r, keys)
        self.keys = keys

    # --- reads ------------------------------------------------------------------------------

    def get(self, contact_id: str) -> dict[str, Any] | None:
        if not CONTACT_ID.fullmatch(contact_id or ""):
            return None
        h = self.db.get(contact_id)
        return decode(h) if h else None

    def count(self) -> int:
        return self.db.count()

    def ids_for(self, e164: str) -> list[str]:
        """Ids of the contacts with ``e164``, sorted."""
        return self.db.ids_for(e164)

    def exist(self, contact_ids: list[str]) -> list[bool]:
        """Whether each of these contacts is stored (an import's dry run)."""
        return self.db.exist(contact_ids)

    def find(self, e164: str, limit: int = MAX_MATCHES) -> tuple[list[dict[str, Any]], int]:
        """Contacts with the number ``e164`` (sorted by name, then id, at most ``limit``)
        and how many there are in all."""
        ids = self.ids_for(e164)
        if not ids:
            return [], 0
        found = [decode(h) for h in self.db.get_many(ids) if h]
        found.sort(key=lambda c: (c.get("name", "").casefold(), c["id"]))
        return found[:limit], len(found)

    def find_in(self, batch: Batch, e164: str, limit: int = MAX_MATCHES) -> Reply[Any]:
        """:meth:`find`, queued on ``batch`` (one script: it travels with the call's arrival);
        the reply's value is ``(contacts, total)``."""

        def done(hashes: list[dict[str, str]]) -> tuple[list[dict[str, Any]], int]:
            found = [decode(h) for h in hashes if h]
            found.sort(key=lambda c: (c.get("name", "").casefold(), c["id"]))
            return found[:limit], len(found)

        return self.db.lookup(e164, batch).map(done)

    def lookup(self, number: Number, hidden: bool = False) -> tuple[list[dict[str, Any]], int]:
        """:meth:`find` for a normalised caller number; nothing for hidden or invalid numbers."""
        if hidden or number.status != "valid" or not number.e164:
            return [], 0
        return self.find(number.e164)

    # --- writes -----------------------------------------------------------------------------

    def put(self, contact: Mapping[str, Any]) -> bool:
        """Create or replace one contact (all fields and numbers). True if it was new."""
        created, _ = self.put_many([contact])
        return created == 1

    def put_many(self, contacts: list[Mapping[str, Any]]) -> tuple[int, int]:
        """Create or replace contacts; returns ``(created, updated)``."""
        checked = [check_contact(c) for c in contacts]
        created = updated = 0
        for i in range(0, len(checked), CHUNK):
            c, u = self._write_chunk(checked[i : i + CHUNK])
            created += c
            updated += u
        return created, updated

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> tuple[int, int]:
        now = time.time()
        created = self.db.replace([(c["id"], _encode(c, now), _e164s(c)) for c in chunk])
        return created, len(chunk) - created

    def remove(self, contact_id: str) -> bool:
        """Delete a contact and its index entries. False if there was none."""
        if not CONTACT_ID.fullmatch(contact_id or ""):
            return False
        return self.db.remove(contact_id)


# --- building contacts from external data (CSV rows, CRM answers) ----------------------------


def from_mapping(
    data: Mapping[str, Any], region: str, *, id_field: str = "id"
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A contact dict from a CRM-style object; returns ``(contact, [(field, problem)])``.

    Keys are canonicalised and mapped like CSV columns; ``numbers`` may be a list of strings
    or of ``{"label", "number"}``; scalar values become strings, lists of scalars are joined
    with ``, ``, anything else is JSON text. ``id`` is kept as text (it is not checked against
    :data:`CONTACT_ID`: a CRM's contacts are not stored).
    """
    out: dict[str, Any] = {}
    nums: list[dict[str, str]] = []
    problems: list[tuple[str, str]] = []

    def add_number(label: str, raw: Any) -> None:
        if not isinstance(raw, str | int):
            problems.append((label, "not a phone number"))
            return
        for part in split_numbers(str(raw)):
            n = numbers.normalise(part, region)
            if n.e164:
                nums.append({"label": label, "number": n.e164})
            else:
                problems.append((label, n.reason))

    for key, value in list(data.items())[: MAX_FIELDS * 2]:
        if not isinstance(key, str) or value is None:
            continue
        name = canonical_name(key)
        if name == "numbers" and isinstance(value, str | int):
            add_number("phone", value)
            continue
        if name == "numbers" and isinstance(value, list):
            for item in value[:MAX_NUMBERS]:
                if isinstance(item, Mapping):
                    label = canonical_name(str(item.get("label") or "phone")) or "phone"
                    add_number(label[:64], item.get("number"))
                else:
                    add_number("phone", item)
            continue
        kind = classify(name, id_field)
        if kind[0] == "number":
            add_number(kind[1], value)
            continue
        if kind[0] == "reserved":
            continue
        target = "id" if kind[0] == "id" else kind[1]
        text = _text(value)
        if text:
            out[target] = text[:MAX_VALUE]
    seen: set[str] = set()
    out["numbers"] = [n for n in nums if not (n["number"] in seen or seen.add(n["number"]))]
    return out, problems


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return clean_value(str(value))
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return clean_value(", ".join(str(v) for v in value))
    return clean_value(json.dumps(value, ensure_ascii=False, default=str))


# --- CSV import -------------------------------------------------------------------------------


@dataclass
class Problem:
    """One problem found in a CSV file; ``column`` is None for the whole row."""

    line: int
    message: str
    column: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    #: rows not imported (each has an entry in ``errors``)
    errors: list[Problem] = field(default_factory=list)
    #: rows imported with a problem (a number that could not be read, a value cut, ...)
    warnings: list[Problem] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list, repr=False)
    dry_run: bool = False

    @property
    def failed(self) -> int:
        return len({p.line for p in self.errors})

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.errors,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "imported": len(self.contacts),
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
        }


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of ``,`` ``;`` tab ``|`` in the header line (``,`` on a tie)."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def parse_csv(
    text: str,
    region: str,
    *,
    id_column: str = "id",
    number_columns: Iterable[str] = (),
    delimiter: str | None = None,
) -> ImportReport:
    """Read contacts from CSV ``text``; every failed row and problem is in the report.

    Raises :class:`ImportFileError` when the file can't be read at all (no header, no id
    column, unnamed or duplicate columns).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise ImportFileError("the first line must be a header naming the columns")
    delim = delimiter or sniff_delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise ImportFileError(f"line 1: cannot read the header: {exc}") from None
    id_col = canonical_name(id_column) or "id"
    names = [canonical_name(h) for h in header]
    if id_col == "id" and "id" not in names:
        # no ``id`` column: another spelling of it (``contact_id``) is the id column
        id_col = next((n for n in names if ALIASES.get(n) == "id"), id_col)
    num_cols = {canonical_name(c) for c in number_columns}
    columns: list[tuple] = []
    seen: dict[str, int] = {}
    for i, raw_name in enumerate(header, start=1):
        name = canonical_name(raw_name)
        if not name:
            raise ImportFileError(f"line 1: column {i} has no name")
        kind = classify(name, id_col, num_cols)
        if kind[0] == "reserved":
            raise ImportFileError(
                f"line 1: column {i} ({raw_name.strip()[:40]!r}) can't be used as a field name"
                + (f" (the id column is {id_col!r})" if ALIASES.get(name, name) == "id" else "")
            )
        key = kind[1] if kind[0] in ("field", "extra") else name
        if key in seen:
            raise ImportFileError(
                f"line 1: columns {seen[key]} and {i} are both {key!r}; rename one of them"
            )
        seen[key] = i
        columns.append((*kind, name) if kind[0] == "id" else kind)
    derive = not any(k[0] == "id" for k in columns)
    if derive and canonical_name(id_column) not in ("", "id"):
        raise ImportFileError(
            f"no {id_col!r} column (named with --id-column); without --id-column a file with"
            " no id column gets ids derived from each row's name and numbers"
        )

    report = ImportReport()
    lines: dict[str, int] = {}
    line = reader.line_num + 1
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.rows += 1
            hint = ""
            if "end of data" in str(exc):
                hint = " (a quote is never closed: nothing from here to the end was imported)"
            report.errors.append(Problem(start, f"cannot read the row: {exc}{hint}"))
            line = reader.line_num + 1
            continue
        line = reader.line_num + 1
        if not row or all(not c.strip() for c in row):
            continue
        report.rows += 1
        contact = _row(row, columns, start, region, report, derive=derive)
        if contact is None:
            continue
        cid = contact["id"]
        if cid in lines:
            report.errors.append(
                Problem(start, f"id {cid!r} is already used on line {lines[cid]}", "id")
            )
            continue
        lines[cid] = start
        report.contacts.append(contact)
    report.errors.sort(key=lambda p: p.line)
    report.warnings.sort(key=lambda p: p.line)
    return report


def derived_id(name: str, e164s: Iterable[str]) -> str:
    """A stable id for a row without one: ``h-`` and a hash of its name (case and spaces
    folded) and its normalised numbers (sorted), so a re-import of the row updates it."""
    folded = " ".join(unicodedata.normalize("NFKC", name).casefold().split())
    text = folded + "|" + ",".join(sorted(set(e164s)))
    return "h-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _row(
    row: list[str],
    columns: list[tuple],
    line: int,
    region: str,
    report: ImportReport,
    *,
    derive: bool = False,
) -> dict[str, Any] | None:
    if len(row) > len(columns):
        report.errors.append(
            Problem(line, f"has {len(row)} fields but the header names {len(columns)}")
        )
        return None
    contact: dict[str, Any] = {}
    nums: list[dict[str, str]] = []
    seen: set[str] = set()
    warnings: list[Problem] = []
    for kind, cell in zip(columns, row, strict=False):
        value = clean_value(cell)
        if not value:
            continue
        if kind[0] == "number":
            for part in split_numbers(value):
                n = numbers.normalise(part, region)
                if n.e164 is None:
                    warnings.append(
                        Problem(line, f"not imported: {n.reason} ({n.status})", kind[1])
                    )
                elif n.e164 not in seen:
                    seen.add(n.e164)
                    nums.append({"label": kind[1], "number": n.e164})
            continue
        name = "id" if kind[0] == "id" else kind[1]
        if len(value) > MAX_VALUE:
            warnings.append(Problem(line, f"cut to {MAX_VALUE} characters", name))
            value = value[:MAX_VALUE]
        contact[name] = value
    if derive:
        if not nums and not contact.get("name"):
            report.errors.append(Problem(line, "no name and no valid number to derive an id from"))
            return None
        contact["id"] = derived_id(contact.get("name", ""), (n["number"] for n in nums))
    cid = contact.get("id", "")
    if not cid:
        report.errors.append(Problem(line, "no id", columns_id_name(columns)))
        return None
    if not CONTACT_ID.fullmatch(cid):
        report.errors.append(
            Problem(line, "the id must be 1 to 64 of A-Z a-z 0-9 _ . @ -", columns_id_name(columns))
        )
        return None
    if len(nums) > MAX_NUMBERS:
        report.errors.append(Problem(line, f"more than {MAX_NUMBERS} numbers"))
        return None
    if not nums:
        warnings.append(Problem(line, "no valid phone number: this contact is never popped"))
    report.warnings.extend(warnings)
    contact["numbers"] = nums
    return contact


def columns_id_name(columns: list[tuple]) -> str:
    for kind in columns:
        if kind[0] == "id":
            return kind[-1]
    return "id"


def import_csv(
    store: Contacts,
    text: str,
    region: str,
    *,
    id_column: str = "id",
    number_columns: Iterable[str] = (),
    delimiter: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Parse ``text`` and store its contacts (create or replace by id; never duplicates)."""
    report = parse_csv(
        text, region, id_column=id_column, number_columns=number_columns, delimiter=delimiter
    )
    report.dry_run = dry_run
    if not dry_run and report.contacts:
        report.created, report.updated = store.put_many(report.contacts)
    elif dry_run:
        exists = store.exist([c["id"] for c in report.contacts])
        report.updated = sum(1 for e in exists if e)
        report.created = len(report.contacts) - report.updated
    return report
