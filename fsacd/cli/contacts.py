"""``fsacd contacts ...`` and ``fsacd pop watch`` (docs/screen-pop.md).

Registered on the main group by fsacd/cli/main.py; shared helpers from fsacd/cli/common.py.
"""

from __future__ import annotations

import json
import math
import sys
import time
import unicodedata
from typing import Any

import click
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fsacd.cli.common import console, echo_json, fail, json_flag, new_table, when


def _store(app: Any) -> Any:
    return app.store


def _contacts(app: Any) -> Any:
    from fsacd.pop.contacts import Contacts

    return Contacts(app.redis, _store(app).keys)


def _safe(value: Any, limit: int = 500) -> str:
    """Text from Redis/CSV/CRM fit for a terminal: no control or escape characters."""
    text = str(value)
    out = "".join(
        " " if unicodedata.category(ch).startswith("C") and ch != "\n" else ch for ch in text
    )
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _region(app: Any, region: str | None) -> str:
    from fsacd.core.numbers import supported_region

    if region is None:
        return app.cfg.freeswitch.default_region
    if not supported_region(region.upper()):
        fail(f"--region {region!r} is not a region phonenumbers supports (e.g. DE, US)")
    return region.upper()


def _numbers_text(contact: dict[str, Any]) -> str:
    return ", ".join(f"{n['number']} ({n.get('label', '')})" for n in contact.get("numbers", []))


# --- contacts --------------------------------------------------------------------------------


@click.group("contacts")
def contacts_group() -> None:
    """Contacts for the screen pop: import a CSV, show, find by number, remove."""


@contacts_group.command("import")
@click.argument("csv_file", type=click.File("rb"))
@click.option(
    "--region",
    default=None,
    help="Region to read national numbers in (default: freeswitch.default_region).",
)
@click.option(
    "--id-column",
    default="id",
    show_default=True,
    help="Column that holds each contact's id (re-imports update by it).",
)
@click.option(
    "--number-column",
    "number_columns",
    multiple=True,
    metavar="COLUMN",
    help="A further column holding phone numbers (phone, mobile, ... are found by name).",
)
@click.option(
    "--delimiter",
    type=click.Choice([",", ";", "tab", "|"]),
    default=None,
    help="Field separator (default: guessed from the header line).",
)
@click.option("--dry-run", is_flag=True, help="Check the file, change nothing.")
@json_flag
@click.pass_obj
def contacts_import(
    app: Any,
    csv_file: Any,
    region: str | None,
    id_column: str,
    number_columns: tuple[str, ...],
    delimiter: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import contacts from a CSV file (UTF-8, header line; `-` reads stdin).

    A contact is created or, if its id exists, replaced: a re-import never duplicates.
    Every row that fails is listed with its line number; exit code 1 if any did.
    """
    from fsacd.pop.contacts import ImportFileError, import_csv

    reg = _region(app, region)
    label = getattr(csv_file, "name", None) or "-"
    if not isinstance(label, str) or label == "<stdin>":
        label = "-"
    try:
        text = csv_file.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{label}: not UTF-8 (byte {exc.start}); save the file as UTF-8 CSV")
    delim = "\t" if delimiter == "tab" else delimiter
    try:
        report = _run(
            import_csv,
            _contacts(app),
            text,
            reg,
            id_column=id_column,
            number_columns=number_columns,
            delimiter=delim,
            dry_run=dry_run,
        )
    except ImportFileError as exc:
        fail(f"{label}: {exc}")
    if as_json:
        echo_json({**report.to_dict(), "region": reg})
    else:
        for p in report.errors:
            click.echo(f"{label}: {p} (row not imported)", err=True)
        for p in report.warnings:
            click.echo(f"{label}: {p}", err=True)
        verb = "would import" if dry_run else "imported"
        click.echo(
            f"{verb} {len(report.contacts)} of {report.rows} rows: {report.created} new,"
            f" {report.updated} updated; {report.failed} failed, {len(report.warnings)} warnings"
        )
    if report.errors:
        sys.exit(1)


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; Redis errors become one line on stderr, exit code 1."""
    from fsacd.state.connection import RedisError

    try:
        return fn(*args, **kwargs)
    except RedisError as exc:
        fail(f"Redis: {exc}")


@contacts_group.command("show")
@click.argument("contact_id")
@json_flag
@click.pass_obj
def contacts_show(app: Any, contact_id: str, as_json: bool) -> None:
    """Every field of one contact."""
    contact = _run(_contacts(app).get, contact_id)
    if contact is None:
        fail(f"unknown contact {contact_id!r}")
    if as_json:
        echo_json(contact)
        return
    table = Table("FIELD", "VALUE", show_header=False, box=None)
    for key in ("id", "name", "company", "status", "language", "tier", "tickets", "notes"):
        if contact.get(key):
            table.add_row(key, Text(_safe(contact[key])))
    table.add_row("numbers", Text(_numbers_text(contact) or "-"))
    for key in sorted(contact):
        if key not in ("id", "name", "company", "status", "language", "tier", "tickets", "notes"):
            if key not in ("numbers", "updated_at"):
                table.add_row(key, Text(_safe(contact[key])))
    if contact.get("updated_at"):
        table.add_row("updated_at", when(contact["updated_at"], time.time()))
    console().print(table)


@contacts_group.command("find")
@click.argument("number")
@click.option("--region", default=None, help="Region to read a national number in.")
@click.option("--crm", "ask_crm", is_flag=True, help="Also ask the external CRM ([crm]).")
@json_flag
@click.pass_obj
def contacts_find(app: Any, number: str, region: str | None, ask_crm: bool, as_json: bool) -> None:
    """Contacts that have NUMBER (any format: +49 30 123, 030 123, 0049...)."""
    from fsacd.core.numbers import normalise

    n = normalise(number, _region(app, region))
    if n.e164 is None:
        fail(f"not a usable number: {n.reason}")
    contacts, total = _run(_contacts(app).lookup, n)
    for c in contacts:
        c["source"] = "store"
    if not contacts and ask_crm:
        if app.cfg.crm is None:
            fail("no [crm] section in the config")
        from fsacd.pop.crm import Crm

        keys = _store(app).keys
        crm = Crm(app.redis, keys, app.cfg.crm, region=app.cfg.freeswitch.default_region)
        contacts = crm.lookup(n.e164)
        total = len(contacts)
    if as_json:
        echo_json({"number": n.e164, "total": total, "contacts": contacts})
        return
    if not contacts:
        click.echo(f"{n.e164}: no contact")
        return
    table = new_table("ID", "NAME", "COMPANY", "STATUS", "NUMBERS", "SOURCE")
    for c in contacts:
        table.add_row(
            *(Text(_safe(c.get(k, ""), 80)) for k in ("id", "name", "company", "status")),
            Text(_numbers_text(c)),
            c.get("source", ""),
        )
    con = console()
    more = f" (showing {len(contacts)})" if total > len(contacts) else ""
    con.print(f"{n.e164}: {total} contact{'s' if total != 1 else ''}{more}")
    con.print(table)


@contacts_group.command("remove")
@click.argument("contact_id")
@click.option("--yes", "-y", is_flag=True, help="Do it without asking.")
@json_flag
@click.pass_obj
def contacts_remove(app: Any, contact_id: str, yes: bool, as_json: bool) -> None:
    """Delete a contact and its numbers from the index; asks first unless --yes."""
    contacts = _contacts(app)
    contact = _run(contacts.get, contact_id)
    if contact is None:
        fail(f"unknown contact {contact_id!r}")
    if not yes:
        name = _safe(contact.get("name") or "no name", 80)
        click.confirm(f"remove contact {contact_id} ({name})?", abort=True)
    if not _run(contacts.remove, contact_id):
        fail(f"unknown contact {contact_id!r}")
    if as_json:
        echo_json({"ok": True, "removed": contact_id})
    else:
        click.echo(f"contact {contact_id} removed")


# --- pop watch ---------------------------------------------------------------------------------


@click.group("pop")
def pop_group() -> None:
    """Screen pops: watch what an agent's desktop would show."""


@pop_group.command("watch")
@click.argument("agent_id")
@click.option("--from-start", is_flag=True, help="Show the pops still kept, then new ones.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N pops.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@json_flag
@click.pass_obj
def pop_watch(
    app: Any,
    agent_id: str,
    from_start: bool,
    count: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print AGENT's screen pops as they are published (Ctrl-C stops)."""
    from fsacd.state.connection import RedisError
    from fsacd.state.pop import PopStore
    from fsacd.state.store import ID_RE

    if not ID_RE.fullmatch(agent_id):
        fail(f"bad agent id {agent_id!r}")
    if timeout is not None and not math.isfinite(timeout):
        fail(f"--timeout must be a finite number of seconds (got {timeout}); leave it out to"
             " watch until Ctrl-C")
    pops = PopStore.of(_store(app))
    try:  # an agent removed since keeps its pops: those may still be watched
        known = _store(app).get_agent(agent_id) is not None or pops.last_pop_id(agent_id) != "0-0"
    except RedisError as exc:
        fail(f"Redis: {exc}")
    if not known:
        fail(f"unknown agent {agent_id!r} (fsacd agent list shows them)")
    con = console()
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = 0
    try:
        last = "0-0" if from_start else pops.last_pop_id(agent_id)
        if not as_json:
            con.print(f"watching pops of agent {agent_id} (Ctrl-C stops)", style="dim")
        while True:
            block = 1000
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                block = max(1, min(block, int(left * 1000)))
            for entry_id, fields in pops.read_pops(agent_id, last, count=100, block_ms=block):
                last = entry_id
                try:
                    pop = json.loads(fields.get("pop", ""))
                except ValueError:
                    continue
                if as_json:
                    click.echo(json.dumps({"id": entry_id, **pop}, ensure_ascii=False))
                else:
                    con.print(render(pop, entry_id))
                shown += 1
                if count is not None and shown >= count:
                    return
    except KeyboardInterrupt:
        if not as_json:
            con.print("stopped", style="dim")
    except RedisError as exc:
        fail(f"Redis: {exc}")


def render(pop: dict[str, Any], entry_id: str = "") -> Any:
    """A pop as a rich renderable; every value from the pop is shown as plain text."""
    when = time.strftime("%H:%M:%S", time.localtime(float(pop.get("ts") or time.time())))
    stage = str(pop.get("stage", ""))
    title = Text(f"{when} {stage}", style="bold")
    title.append(f"  call {_safe(pop.get('call', ''), 64)}  queue {_safe(pop.get('queue', ''))}")
    if stage not in ("offer", "answered"):
        extra = pop.get("outcome") or pop.get("reason") or ""
        return Text.assemble(title, f"  {_safe(extra, 64)}" if extra else "")
    parts: list[Any] = []
    grid = Table(show_header=False, box=None, padding=(0, 2))
    if pop.get("hidden"):
        grid.add_row("number", "hidden")
    elif pop.get("number"):
        grid.add_row("number", Text(_safe(pop["number"], 40)))
    if pop.get("caller_name"):
        grid.add_row("caller", Text(_safe(pop["caller_name"], 80)))
    if pop.get("waited") is not None:
        grid.add_row("waited", f"{float(pop['waited']):.0f}s")
    for k, v in (pop.get("ivr") or {}).items():
        grid.add_row(Text(f"ivr {_safe(k, 40)}"), Text(_safe(v, 80)))
    match = pop.get("match")
    if match == "found":
        grid.add_row("match", f"{pop.get('matches', len(pop.get('contacts', [])))} contact(s)")
    elif match in ("none", "no-number"):
        grid.add_row("match", "no match — new contact")
    else:
        grid.add_row("match", Text(_safe(match or "")))
    parts.append(grid)
    for c in pop.get("contacts") or []:
        t = Table(show_header=False, box=None, padding=(0, 2))
        for k, v in c.items():
            if k == "numbers":
                v = _numbers_text(c)
            t.add_row(Text(_safe(k, 40)), Text(_safe(v)))
        parts.append(Panel(t, title="contact", title_align="left", expand=False))
    new = pop.get("new_contact")
    if new is not None and not pop.get("contacts"):
        prefill = " ".join(x for x in (_safe(new.get("name", ""), 80), _numbers_text(new)) if x)
        parts.append(Text(f"new contact: {prefill or '-'}"))
    hist = pop.get("history") or []
    if hist:
        t = Table("DATE", "QUEUE", "AGENT", "OUTCOME", box=None, padding=(0, 2))
        for h in hist:
            t.add_row(
                *(Text(_safe(h.get(k, ""), 40)) for k in ("date", "queue", "agent", "outcome"))
            )
        parts.append(Panel(t, title="previous calls", title_align="left", expand=False))
    return Panel(Group(*parts), title=title, title_align="left", subtitle=entry_id or None)
