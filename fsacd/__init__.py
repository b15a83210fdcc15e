"""fsacd: a call-center ACD controller for FreeSWITCH."""

__version__ = "0.1.0"
