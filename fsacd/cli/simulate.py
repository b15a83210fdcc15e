"""``fsacd simulate``: capacity planning against Erlang C (docs/simulate.md).

The simulation runs in a fresh Python process (``python -m fsacd.tools.simulate``): its
accelerated clock must be installed before gevent and fsacd's engine are loaded, which this
process has already done. Every argument is handed on; ``--help`` shows the simulator's.
"""

from __future__ import annotations

import subprocess
import sys

import click

from fsacd.cli.common import App, pass_app

TOOL = "fsacd.tools.simulate"


@click.command(
    "simulate",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                      "help_option_names": []},
    add_help_option=False,
)  # fmt: skip
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def simulate(app: App, args: tuple[str, ...]) -> None:
    """Simulate callers against fsacd's engine and compare with Erlang C (--help for more)."""
    argv = list(args)
    given = any(a == "--config" or a.startswith("--config=") for a in argv)
    if app.path is not None and not given:
        argv = ["--config", str(app.path), *argv]
    try:
        rc = subprocess.call([sys.executable, "-m", TOOL, *argv])
    except KeyboardInterrupt:
        rc = 130
    sys.exit(rc)
