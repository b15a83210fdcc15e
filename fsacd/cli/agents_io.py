"""``fsacd agent import FILE.csv`` and ``fsacd agent export``: agents in bulk (docs/cli.md).

The CSV has a header line with the columns ``id``, ``contact``, ``queues`` (``support:1
sales:2`` or plain ``support``, position 1) and optionally ``consent`` (``yes``/``no``, empty
leaves it as it is). Every line is checked before anything is written: one bad line and
nothing is imported (each problem on its own line, naming the line). A re-import changes
only what differs, so importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import getpass
import io
import sys
import time
from dataclasses import dataclass
from typing import Any

import click

from fsacd.cli.common import App, echo_json, fail, handles_errors, json_flag, pass_app
from fsacd.core import consent, dialstring

COLUMNS = ("id", "contact", "queues", "consent")
_YES = {"yes", "y", "true", "1", "given"}
_NO = {"no", "n", "false", "0", "revoked"}
#: Most rows one file may hold.
MAX_ROWS = 100000


@dataclass
class Row:
    line: int
    id: str
    contact: str
    queues: dict[str, int]
    consent: bool | None


def parse_queues(text: str, known: set[str] | dict[str, Any]) -> dict[str, int]:
    """``support:1 sales:2`` / ``support`` → {name: position}; ValueError naming the problem."""
    out: dict[str, int] = {}
    for token in text.replace(",", " ").split():
        name, sep, pos_text = token.partition(":")
        pos = 1
        if sep:
            if not pos_text.isascii() or not pos_text.isdigit() or int(pos_text) > 10**9:
                raise ValueError(f"queue {token!r}: the position must be a whole number >= 0")
            pos = int(pos_text)
        if name not in known:
            raise ValueError(f"unknown queue {name!r} (configured: {', '.join(sorted(known))})")
        if name in out:
            raise ValueError(f"queue {name!r} is listed twice")
        out[name] = pos
    if not out:
        raise ValueError("no queue given (e.g. support:1 sales:2)")
    return out


def parse_csv(text: str, known: set[str] | dict[str, Any]) -> tuple[list[Row], list[str]]:
    """The rows of an agents CSV and every problem (``line N: ...``)."""
    from fsacd.state.store import check_contact, check_id

    errors: list[str] = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS[:3] if c not in header]
    if missing:
        return [], [
            f"line 1: the header needs the columns id, contact, queues (missing: "
            f"{', '.join(missing)}; found: {', '.join(header) or 'nothing'})"
        ]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        errors.append(
            f"line 1: unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})"
        )
    reader.fieldnames = header
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for rec in reader:
        line = reader.line_num
        if len(rows) >= MAX_ROWS:
            errors.append(f"line {line}: more than {MAX_ROWS} agents in one file")
            break
        if None in rec:
            errors.append(f"line {line}: more fields than the header has columns")
            continue
        values = {k: (v or "").strip() for k, v in rec.items()}
        if not any(values.values()):
            continue  # a blank line
        agent_id, contact = values.get("id", ""), values.get("contact", "")
        try:
            check_id(agent_id)
            problem = dialstring.contact_problem(contact)
            if problem:
                raise ValueError(f"contact {problem}")
            check_contact(contact)
            queues = parse_queues(values.get("queues", ""), known)
            given = values.get("consent", "").lower()
            if given and given not in _YES | _NO:
                raise ValueError(f"consent must be yes or no (or empty), got {given!r}")
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        if agent_id in seen:
            errors.append(f"line {line}: agent {agent_id} is already on line {seen[agent_id]}")
            continue
        seen[agent_id] = line
        rows.append(
            Row(
                line,
                agent_id,
                contact,
                queues,
                True if given in _YES else False if given in _NO else None,
            )
        )
    return rows, errors


def _consent_fields(agent: dict[str, Any] | None, wanted: bool | None, by: str) -> dict | None:
    if wanted is None:
        return None
    has = consent.agent_consent_view(agent)["consent"] if agent else False
    if wanted == has:
        return None
    now = time.time()
    return consent.give_agent_consent(now, by) if wanted else consent.revoke_agent_consent(now, by)


@click.command("import")
@click.argument("csv_file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check the file and say what would change.")
@json_flag
@pass_app
@handles_errors
def agent_import(app: App, csv_file: Any, dry_run: bool, as_json: bool) -> None:
    """Add or update agents from a CSV file (columns id, contact, queues[, consent]).

    All or nothing: any bad line is reported (with its number) and nothing is imported.
    Agents not in the file are left alone; a re-import changes only what differs.
    """
    label = getattr(csv_file, "name", "-")
    label = label if isinstance(label, str) and label != "<stdin>" else "-"
    try:
        text = csv_file.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{label}: not UTF-8 (byte {exc.start}); save the file as UTF-8 CSV")
    rows, errors = parse_csv(text, app.cfg.queues)
    if errors:
        for e in errors:
            click.echo(f"{label}: {e}", err=True)
        fail(f"{label}: {len(errors)} problem(s), nothing imported")
    store = app.store
    store.sync_queues(app.cfg.queues)
    by = f"import:{getpass.getuser()}"
    existing = {a["id"]: a for a in store.list_agents()}
    created, updated, unchanged, consents = [], [], [], []
    plan: list[tuple[Row, bool, dict | None]] = []
    for row in rows:
        old = existing.get(row.id)
        changed = old is None or old["contact"] != row.contact or old["queues"] != row.queues
        fields = _consent_fields(old, row.consent, by)
        if old is None:
            created.append(row.id)
        elif changed:
            updated.append(row.id)
        elif fields is None:
            unchanged.append(row.id)
        if fields is not None:
            consents.append(row.id)
        plan.append((row, changed, fields))
    if not dry_run:
        with store.batch(transaction=True) as pipe:
            for row, changed, fields in plan:
                if changed:
                    store.add_agent(row.id, row.contact, row.queues, pipe=pipe)
                if fields is not None:
                    store.set_agent_fields(row.id, pipe=pipe, **fields)
                    store.event(
                        "agent-consent", pipe, agent=row.id, state=fields["rec_consent"], by=by
                    )
    report = {
        "ok": True,
        "dry_run": dry_run,
        "rows": len(rows),
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "consent_changed": consents,
    }
    if as_json:
        echo_json(report)
        return
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"{verb} {len(rows)} agent(s) from {label}: {len(created)} new, {len(updated)} updated,"
        f" {len(unchanged)} unchanged, consent changed for {len(consents)}"
    )


@click.command("export")
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File to write (default: stdout).",
)
@pass_app
@handles_errors
def agent_export(app: App, output: Any) -> None:
    """Every agent as CSV (id, contact, queues, consent): what agent import reads back."""
    agents = app.store.list_agents()
    writer = csv.writer(output or sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    for a in agents:
        queues = " ".join(
            f"{q}:{p}" for q, p in sorted(a["queues"].items(), key=lambda kv: (kv[1], kv[0]))
        )
        state = consent.agent_consent_view(a)["state"]
        given = {"given": "yes", "revoked": "no"}.get(state, "")
        writer.writerow([a["id"], a["contact"], queues, given])


def register(agent_group: click.Group) -> None:
    """Add import and export to ``fsacd agent`` (fsacd/cli/main.py)."""
    agent_group.add_command(agent_import)
    agent_group.add_command(agent_export)
