"""The ``fsacd`` console script and ``python -m fsacd``: gevent patches the standard library
first, before anything (redis, ssl, urllib) imports it, then the click CLI runs."""

from __future__ import annotations


def main() -> None:
    from gevent import monkey

    monkey.patch_all()
    from fsacd.cli.main import main as cli

    cli()
