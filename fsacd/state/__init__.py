"""Everything that touches Redis: keys, connection, Lua scripts, the stores."""
