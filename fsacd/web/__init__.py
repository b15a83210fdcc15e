"""``fsacd web``: the wallboard (``/``, pushed by Server-Sent Events), ``/agent/ID`` and
``/metrics``, all read from Redis through fsacd/state/stats.py (docs/monitoring.md)."""
