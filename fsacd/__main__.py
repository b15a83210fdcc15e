"""Allow ``python -m fsacd``."""

from fsacd.cli import main

main()
