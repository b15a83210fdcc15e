"""Allow ``python -m fsacd``."""

from fsacd.cli.main import main

main()
