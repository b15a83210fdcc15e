"""``fsacd numbers ...``: the numbers fsacd may present as caller ID (docs/cli.md, caller-id.md).

Registered in :mod:`fsacd.cli.main` as the ``numbers`` group; the ``App`` object of the main group
gives the config and the Redis client.
"""

from __future__ import annotations

import functools
import getpass
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from fsacd.cli.common import echo_json, fail, json_flag

if TYPE_CHECKING:
    from fsacd.verified.registry import NumberEntry, VerifiedNumbers


def _reg() -> Any:
    """fsacd.verified.registry, imported when a numbers command runs (it pulls in httpx:
    every other command starts faster without it)."""
    from fsacd.verified import registry

    return registry


def _handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from fsacd.config import ConfigError
        from fsacd.esl.session import ESLError
        from fsacd.state.connection import RedisError

        try:
            return fn(*args, **kwargs)
        except (_reg().NumberError, ValueError) as exc:
            fail(str(exc))
        except ConfigError as exc:
            fail("; ".join(exc.errors))
        except ESLError as exc:
            fail(f"FreeSWITCH: {exc}")
        except RedisError as exc:
            fail(f"Redis: {exc}")

    return wrapper


def _registry(app: Any) -> VerifiedNumbers:
    cfg = app.cfg
    keys = app.store.keys
    region = cfg.freeswitch.default_region
    return _reg().VerifiedNumbers(app.redis, keys, cfg.numbers, region=region)


def _check_queues(app: Any, queues: tuple[str, ...]) -> None:
    for q in queues:
        if q not in app.cfg.queues:
            fail(f"unknown queue {q!r} (configured: {', '.join(app.cfg.queues)})")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _state_text(e: NumberEntry, now: float) -> str:
    state = e.state(now)
    if state == "verified":
        until = f" until {_when(e.expires_at)}" if e.expires_at else ""
        return f"verified ({e.via}){until}"
    if state == "expired":
        return f"expired {_when(e.expires_at)}"
    if e.code_pending and e.code_expires_at > now:
        return f"pending (code sent, valid until {_when(e.code_expires_at)})"
    return "pending"


@click.group("numbers")
def numbers_group() -> None:
    """Numbers fsacd may present as caller ID, and their verification."""


@numbers_group.command("add")
@click.argument("number")
@click.option(
    "--queue", "queues", multiple=True, metavar="NAME", help="A queue that may present it."
)
@click.option("--agent", default=None, metavar="ID", help="The agent whose direct number it is.")
@json_flag
@click.pass_obj
@_handles_errors
def numbers_add(app: Any, number: str, queues: tuple[str, ...], agent: str | None, as_json: bool):
    """Register NUMBER (E.164) as pending verification.

    E.164 only: +4922129191999. A registered number gets the queues and agent added."""
    _check_queues(app, queues)
    if agent is not None and app.store.get_agent(agent) is None:
        fail(f"unknown agent {agent!r} (add it first: fsacd agent add {agent} ...)")
    entry, created = _registry(app).add(number, queues=queues, agent=agent)
    if as_json:
        echo_json({"ok": True, "created": created, "number": entry.as_dict(time.time())})
        return
    verb = "added" if created else "updated"
    where = f" for {', '.join(entry.queues)}" if entry.queues else ""
    state = entry.state(time.time())
    click.echo(f"{entry.number} {verb}{where} ({state})")
    if state != "verified":
        click.echo(f"verify it: fsacd numbers verify {entry.number} --via call|sms")


@numbers_group.command("verify")
@click.argument("number")
@click.option("--via", type=click.Choice(["call", "sms"]), required=True, help="How to send.")
@json_flag
@click.pass_obj
@_handles_errors
def numbers_verify(app: Any, number: str, via: str, as_json: bool) -> None:
    """Send a one-time code to NUMBER: a call that speaks it, or an SMS."""
    reg = _registry(app)
    number = _reg().require_e164(number, reg.region)
    if reg.get(number) is None:
        fail(f"{number} is not registered: fsacd numbers add {number} first")
    if via == "call":
        from fsacd.config import password

        zeros = "0" * reg.settings.code_digits
        _reg().verify_call_command(number, zeros, reg.settings)  # config ok?
        from fsacd.esl.session import InboundClient

        host, port = app.cfg.freeswitch.inbound_address
        client = InboundClient(
            host,
            port,
            password(app.cfg) or "",
            command_timeout=app.cfg.server.command_timeout,
        )
        client.connect()
        try:
            # subscribed before the call is placed: the first say/speak is not missed
            client.subscribe(
                ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP_COMPLETE"]
            )
            result = reg.verify_via_call(number, client)
            spoken, why = _reg().code_spoken(client, result["uuid"], reg.settings.call_app)
        finally:
            client.close()
        result["spoken"] = spoken
        if spoken is False:
            reg.void_unspoken(number, result["uuid"], why)
            fail(
                f"the call to {number} was answered but FreeSWITCH did not speak the code: {why}."
                " The code is void; fix the switch (fsacd doctor) and ask again"
            )
        if spoken is None:
            click.echo(f"warning: cannot tell whether the code was spoken: {why}", err=True)
    else:
        result = reg.verify_via_sms(number)
    if as_json:
        echo_json({"ok": True, **result})
        return
    what = "call answered" if via == "call" else "SMS handed over"
    click.echo(
        f"{what}: code sent to {result['number']}, valid until"
        f" {_when(result['code_expires_at'])}, {result['attempts']} tries."
        f" Confirm with: fsacd numbers confirm {result['number']} CODE"
    )


@numbers_group.command("confirm")
@click.argument("number")
@click.argument("code")
@json_flag
@click.pass_obj
@_handles_errors
def numbers_confirm(app: Any, number: str, code: str, as_json: bool) -> None:
    """Confirm NUMBER with the CODE it received: it is verified."""
    entry = _registry(app).confirm(number, code)
    if as_json:
        echo_json({"ok": True, "number": entry.as_dict(time.time())})
    else:
        click.echo(f"{entry.number} {_state_text(entry, time.time())}")


@numbers_group.command("list")
@json_flag
@click.pass_obj
@_handles_errors
def numbers_list(app: Any, as_json: bool) -> None:
    """Every registered number and operator-verified block, with its state."""
    reg = _registry(app)
    now = time.time()
    entries, blocks = reg.list(), reg.list_blocks()
    if as_json:
        echo_json(
            {
                "numbers": [e.as_dict(now) for e in entries],
                "blocks": [b.as_dict(now) for b in blocks],
            }
        )
        return
    if not entries and not blocks:
        click.echo("no numbers (add one: fsacd numbers add +4922129191999 --queue NAME)")
        return
    con = Console(highlight=False)
    if not con.is_terminal:
        con = Console(highlight=False, width=200)
    if entries:
        table = Table(
            "NUMBER", "STATE", "QUEUES", "AGENT", "REASON", box=box.SIMPLE_HEAD, title="numbers"
        )
        for e in entries:
            table.add_row(
                e.number + (" (special)" if e.special else ""),
                _state_text(e, now),
                ",".join(e.queues) or "any",
                e.agent or "-",
                (f"{e.reason} (by {e.by})" if e.reason else "-"),
            )
        con.print(table)
    if blocks:
        table = Table("BLOCK", "STATE", "REASON", "BY", box=box.SIMPLE_HEAD, title="blocks")
        for b in blocks:
            until = f" until {_when(b.expires_at)}" if b.expires_at else ""
            state = "expired" if b.expired(now) else f"verified{until}"
            table.add_row(b.prefix + "…", state, b.reason, b.by)
        con.print(table)


@numbers_group.command("remove")
@click.argument("number")
@click.option("--block", is_flag=True, help="NUMBER is a block prefix marked verified.")
@click.option("--yes", "-y", is_flag=True, help="Do it without asking.")
@json_flag
@click.pass_obj
@_handles_errors
def numbers_remove(app: Any, number: str, block: bool, yes: bool, as_json: bool) -> None:
    """Forget NUMBER (or, with --block, an operator-verified block); asks first unless --yes."""
    reg = _registry(app)
    known = reg.db.block_exists(number) if block else reg.db.exists(number)
    if known and not yes:  # an unknown one fails below without asking
        what = "block" if block else "number"
        click.confirm(f"remove {what} {number} (its verification is lost)?", abort=True)
    if block:
        reg.remove_block(number, by=_operator())
    else:
        reg.remove(number)
    if as_json:
        echo_json({"ok": True, "removed": number, "block": block})
    else:
        click.echo(f"{'block ' if block else ''}{number} removed")


@numbers_group.command("mark-verified")
@click.argument("target", metavar="NUMBER|PREFIX")
@click.option("--reason", required=True, help="Why the company may use it (logged, evented).")
@click.option("--block", is_flag=True, help="TARGET is a block prefix: every number in it.")
@click.option("--special", is_flag=True, help="Accept a number the numbering plan does not know.")
@click.option("--days", type=int, default=None, help="Valid this many days (0 = never expires).")
@click.option("--queue", "queues", multiple=True, metavar="NAME", help="Queue that may use it.")
@click.option("--agent", default=None, metavar="ID", help="The agent whose number it is.")
@click.option("--by", default=None, help="Operator name (default: the login name).")
@json_flag
@click.pass_obj
@_handles_errors
def numbers_mark_verified(
    app: Any,
    target: str,
    reason: str,
    block: bool,
    special: bool,
    days: int | None,
    queues: tuple[str, ...],
    agent: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Operator override: mark a number or a whole block verified without a code."""
    _check_queues(app, queues)
    if block and (queues or agent or special):
        fail("--block takes no --queue, --agent or --special")
    result = _registry(app).mark_verified(
        target,
        reason=reason,
        by=by or _operator(),
        block=block,
        special=special,
        days=days,
        queues=queues,
        agent=agent,
    )
    now = time.time()
    if as_json:
        key = "block" if isinstance(result, _reg().BlockEntry) else "number"
        echo_json({"ok": True, key: result.as_dict(now)})
        return
    if isinstance(result, _reg().BlockEntry):
        until = f" until {_when(result.expires_at)}" if result.expires_at else ""
        click.echo(f"block {result.prefix}… marked verified{until} by {result.by}: {reason}")
    else:
        click.echo(f"{result.number} {_state_text(result, now)} by {result.by}: {reason}")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"
