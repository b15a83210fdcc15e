"""Allow ``python -m fsacd``."""

from fsacd.cli.entry import main

main()
