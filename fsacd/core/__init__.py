"""Domain rules: plain Python (no gevent, redis, greenswitch, no config)."""
