"""The click CLI `fsacd ...`, one module per command group."""
