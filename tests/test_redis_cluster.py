"""fsacd on a real Redis Cluster (three masters started by the test): calls end to end through
the stand-in, the wake-up and control paths, the CLI, the stores' transactions; the hash-tag
rule and the refusals. The failover test (a master killed under calls) is long."""

from __future__ import annotations

import json
import time

import pytest
import redis
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.config import ConfigError, load_text
from fsacd.core.keyslot import hash_tag, prefix_problem
from fsacd.standin import PhoneBehaviour as P
from fsacd.state.cluster import parse_cluster_url
from fsacd.state.connection import (
    CLUSTER_NODE_REFUSED,
    POOL_SIZE,
    ConnectionError,
    RedisError,
    RedisSetupError,
    check_cluster_node,
    close,
    connect,
    url_of,
)
from fsacd.state.contacts import ContactStore
from fsacd.state.history import HistoryStore
from fsacd.state.keys import Keys
from fsacd.state.store import Store
from fsacd.state.verified import NumberStore
from tests.acd_harness import Acd, wait_for
from tests.redis_cluster import RedisCluster

PREFIX = "{fsacd}:"


@pytest.fixture(scope="module")
def cluster():
    c = RedisCluster(masters=3).start()
    yield c
    c.stop()


@pytest.fixture
def rc(cluster):
    """A cluster client on an empty cluster."""
    client = connect(cluster.url)
    for node in cluster.nodes:
        redis.Redis(port=node.port).flushall()
    yield client
    close(client)


def test_hash_tags_of_prefixes():
    assert hash_tag("{fsacd}:") == "fsacd"
    assert hash_tag("acd:{site-a}:") == "site-a"
    for none in ("fsacd:", "{}fsacd:", "{fsacd:", "fsacd}:"):
        assert hash_tag(none) is None
        assert "\n" not in prefix_problem(none)
    assert prefix_problem("{fsacd}:") is None


def test_cluster_urls_are_read_part_by_part():
    p = parse_cluster_url("redis+cluster://fsacd:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert p["nodes"] == [("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)]
    assert (p["username"], p["password"], p["ssl"]) == ("fsacd", "s@cret", False)
    assert parse_cluster_url("rediss+cluster://h:7000/")["ssl"] is True
    for bad in ("redis+cluster://h:7000/1", "redis+cluster://h:7000?db=2", "redis+cluster://:1"):
        with pytest.raises(ValueError):
            parse_cluster_url(bad)
        with pytest.raises(RedisSetupError):
            connect(bad)


def test_a_cluster_url_without_a_hash_tag_is_refused_with_one_line(cluster):
    cfg = '[redis]\nurl = "redis+cluster://h:7000"\n{}[queues.support]\n'
    with pytest.raises(ConfigError) as err:
        load_text(cfg.format(""), env={})
    assert err.value.errors == [
        "redis.prefix: on a Redis Cluster all of fsacd's keys must share one slot: the prefix"
        ' needs a hash tag, e.g. prefix = "{fsacd}:" (got "fsacd:")'
    ]
    with pytest.raises(ConfigError, match="hash tag"):  # REDIS_URL from the environment too
        load_text("[queues.support]\n", env={"REDIS_URL": "redis+cluster://h:7000"})
    assert load_text(cfg.format('prefix = "{fsacd}:"\n'), env={}).redis.prefix == PREFIX
    client = connect(cluster.url)
    try:
        with pytest.raises(RedisSetupError, match="needs a hash tag") as err:
            Store(client)  # the default prefix, fsacd:
        assert "\n" not in str(err.value)
        with pytest.raises(RedisSetupError, match="needs a hash tag"):
            ContactStore(client, Keys("acd:"))
        Store(client, prefix=PREFIX)
    finally:
        close(client)


def test_a_redis_url_to_a_cluster_node_is_refused_at_start(cluster):
    """A redis:// URL that leads to a cluster node (MOVED on most keys): refused before any
    call, pointing to the cluster URL; the cluster URL passes."""
    client = connect(f"redis://127.0.0.1:{cluster.nodes[0].port}/0")
    try:
        with pytest.raises(RedisSetupError) as err:
            check_cluster_node(client)
        assert str(err.value) == CLUSTER_NODE_REFUSED and "redis+cluster://" in CLUSTER_NODE_REFUSED
    finally:
        close(client)
    client = connect(cluster.url)
    check_cluster_node(client)
    assert url_of(client) == cluster.url
    for node in client.get_nodes():  # each node's pool bounded and blocking, timeouts set
        pool = node.redis_connection.connection_pool
        assert type(pool).__name__ == "BlockingConnectionPool" and pool.max_connections == POOL_SIZE
        assert pool.connection_kwargs["socket_timeout"] == 5.0
    close(client)


def test_calls_are_served_on_a_three_master_cluster(cluster, rc, tmp_path):
    """Agents, a call bridged and hung up, the agent idle, counters right; a waiting caller
    bridged after a login (the wake-up path); ``fsacd reload`` reaches the controller, also
    when it is published on another master; every key is PREFIX + the documented name, all
    on the master of the prefix's slot."""
    acd = Acd(cluster.url, prefix=PREFIX)
    reloads: list[int] = []
    acd.ctl.matcher.on_reload = lambda: reloads.append(1)
    try:
        acd.agent("1001", P.answers(after=0.1, talk=0.3), {"support": 1})
        first = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        first.wait_bridged(10)
        first.wait_hangup(10)
        wait_for(acd.all_agents_free, timeout=10, what="1001 idle")
        assert int(acd.agent_state("1001")["answered"]) == 1

        # nobody free in sales: the caller waits; a login wakes the matcher over pub/sub
        waiting = acd.fs.place_call(destination="5001", caller_number="+4922129191002")
        wait_for(
            lambda: (acd.store.get_call(waiting.uuid) or {}).get("state") == "waiting",
            what="caller waiting",
        )
        acd.agent("1002", P.answers(after=0.1, talk=5.0), {"sales": 1}, login=False)
        acd.store.login("1002")
        waiting.wait_bridged(10)
        waiting.hangup()
        wait_for(acd.all_agents_free, timeout=10, what="agents idle")
        ended = {e["call"]: e["outcome"] for e in acd.events("call-ended")}
        assert ended == {first.uuid: "answered", waiting.uuid: "answered"}
        assert int(acd.agent_state("1002")["answered"]) == 1
        stats = rc.hgetall(acd.store.keys.stats_total("queue", "support"))
        assert int(stats.get("offered", 0)) == 1 and int(stats.get("answered", 0)) == 1

        # fsacd reload (the CLI, on the cluster URL) reaches the one controller listening
        cfg = tmp_path / "fsacd.toml"
        cfg.write_text(f'[redis]\nprefix = "{PREFIX}"\n\n[queues.support]\n')
        res = CliRunner().invoke(
            main, ["--config", str(cfg), "reload", "--json"], env={"REDIS_URL": cluster.url}
        )
        assert res.exit_code == 0, (res.output, res.exception)
        assert json.loads(res.stdout) == {"requested": True, "controllers": 1}
        wait_for(lambda: reloads == [1], what="reload received")
        # PUBLISH is broadcast over the cluster bus: one sent to another master arrives too
        home = cluster.master_of(acd.store.keys.control_channel())
        assert home is not None
        other = next(n for n in cluster.nodes if n.port != home.port)
        redis.Redis(port=other.port).publish(acd.store.keys.control_channel(), "reload")
        wait_for(lambda: reloads == [1, 1], what="reload from another master")
        # a listener on another node than the channel's master gets it and is counted
        ps = rc.pubsub(node=rc.get_node("127.0.0.1", other.port), ignore_subscribe_messages=True)
        elsewhere = acd.store.keys.ctl_channel("ctl-elsewhere")
        ps.subscribe(acd.store.keys.control_channel(), elsewhere)
        try:
            assert acd.store.control("reload") == 2  # the controller and that listener
            msg = wait_for(lambda: ps.get_message(timeout=0.1), what="message on another node")
            assert msg["data"] == "reload"
            # a hand-off whose only listener is on another node: counted, not "nobody there"
            assert rc.publish(elsewhere, "{}") == 1
            assert rc.publish(acd.store.keys.ctl_channel("ctl-gone"), "{}") == 0
        finally:
            ps.close()
        wait_for(lambda: reloads == [1, 1, 1], what="third reload")

        keys = [k for n in cluster.nodes for k in redis.Redis(port=n.port).keys("*")]
        assert keys and all(k.startswith(PREFIX.encode()) for k in keys)
        for name in (b"agent:1001", b"call:" + first.uuid.encode(), b"queue:support:members",
                     b"stats:queue:support:total", b"history:+4922129191001"):  # fmt: skip
            assert PREFIX.encode() + name in keys
        for agent in ("1001", "1002"):  # screen pops: PUBLISH + XADD in one cluster pipeline
            assert rc.xlen(acd.store.keys.agent_pops(agent)) >= 1
        assert redis.Redis(port=home.port).dbsize() == len(keys)  # one master holds them all
    finally:
        acd.stop()


def test_the_cli_works_on_a_cluster(cluster, rc, tmp_path):
    """Agents added, imported (scripts in a MULTI/EXEC pipeline, after the script cache was
    flushed), listed and logged in through the CLI; ``reload`` counts the listener."""
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text(f'[redis]\nprefix = "{PREFIX}"\n\n[queues.support]\n[queues.sales]\n')
    env = {"REDIS_URL": cluster.url}
    runner = CliRunner()

    def run(*args: str) -> str:
        res = runner.invoke(main, ["--config", str(cfg), *args], env=env)
        assert res.exit_code == 0, (res.output, res.exception)
        return res.stdout

    run("agent", "add", "1001", "--contact", "user/1001@pbx.example", "--queue", "support:1")
    for node in cluster.nodes:
        redis.Redis(port=node.port).script_flush()
    csv = tmp_path / "agents.csv"
    csv.write_text("id,contact,queues\n2001,user/2001@pbx.example,support:1 sales:2\n"
                   "2002,user/2002@pbx.example,sales:1\n")  # fmt: skip
    run("agent", "import", str(csv))
    run("agent", "login", "2001")
    rows = {a["id"]: a for a in json.loads(run("agent", "list", "--json"))}
    assert set(rows) == {"1001", "2001", "2002"}
    assert rows["2001"]["status"] == "available" and rows["1001"]["status"] == "logged-out"
    run("agent", "remove", "2002", "--yes")
    assert [a["id"] for a in json.loads(run("agent", "list", "--json"))] == ["1001", "2001"]
    shown = json.loads(run("queue", "show", "support", "--json"))
    assert [m["id"] for m in shown["members"]] == ["1001", "2001"]
    assert json.loads(run("calls", "--json")) == []
    assert "support" in run("stats", "--json")


def test_the_stores_transactions_work_on_a_cluster(rc):
    """WATCH/MULTI/EXEC (contacts, a code's verification), MULTI/EXEC (history, the number
    registry) on the cluster's one slot: each store's own commands, as its features use them."""
    keys = Keys(PREFIX)
    contacts = ContactStore(rc, keys)
    stored = json.dumps([{"number": "+4922129191001"}])
    anna = ("c-1", {"id": "c-1", "name": "Anna", "numbers": stored}, {"+4922129191001"})
    assert contacts.replace([anna]) == 1
    assert contacts.replace([anna]) == 0  # replaced, not new
    assert contacts.ids_for("+4922129191001") == ["c-1"]
    assert contacts.remove("c-1") is True and contacts.ids_for("+4922129191001") == []
    hist = HistoryStore(rc, keys)
    for i in range(3):
        hist.push("+4922129191001", json.dumps({"i": i}), max_entries=2, ttl=60)
    assert [json.loads(e)["i"] for e in hist.recent("+4922129191001", 5)] == [2, 1]
    numbers = NumberStore(rc, keys)
    numbers.save("+4922129190", {"state": "pending", "code_hash": "h1"}, event="number-added")
    assert numbers.version() == 1
    assert numbers.verify("+4922129190", "other", {"state": "verified"}, drop=["code_hash"],
                          event="number-verified") is False  # fmt: skip
    assert numbers.verify("+4922129190", "h1", {"state": "verified"}, drop=["code_hash"],
                          event="number-verified") is True  # fmt: skip
    assert numbers.get("+4922129190") == {"state": "verified"} and numbers.version() == 2
    types = [f["type"] for _, f in rc.xrange(keys.events())]
    assert types == ["number-added", "number-verified"]


def test_a_cluster_that_is_away_is_a_connection_error(cluster, rc):
    """Every node down: commands and pipelines fail with ConnectionError (a RedisError the
    outage handling rides out), not redis-py's RedisClusterException; back when it is."""
    store = Store(rc, prefix=PREFIX)
    store.sync_queues(["support"])
    for node in cluster.nodes:
        node.kill()
    try:
        with pytest.raises(ConnectionError):
            store.configured_queues()
        with pytest.raises(ConnectionError):
            store.sync_queues(["support"])  # a MULTI/EXEC pipeline
        with pytest.raises(ConnectionError):
            store.ping()
        with pytest.raises(RedisError, match="Redis Cluster"):
            connect(cluster.url)  # it asks for the slots at once
    finally:
        for node in cluster.nodes:
            node.start()
        cluster.wait_ok()
    wait_for(lambda: _answers(store), what="cluster back")
    assert store.configured_queues() == {"support"}  # AOF: kept over the restart


def _answers(store: Store) -> bool:
    try:
        return store.ping()
    except RedisError:
        return False


@pytest.mark.long
def test_calls_go_on_when_the_master_of_the_slot_dies():
    """Opt-in (scripts/test --long): three masters with a replica each; the master serving
    fsacd's slot is killed (-9) with calls talking; its replica is promoted; the calls and
    a later one end with true records."""
    c = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000).start()
    try:
        acd = Acd(c.url, prefix=PREFIX)
        try:
            for a in ("1001", "1002", "1003"):
                acd.agent(a, P.answers(after=0.3, talk=6.0), {"support": 1})
            calls = [
                acd.fs.place_call(destination="5000", caller_number=f"+49221291910{i}")
                for i in range(3)
            ]
            for call in calls:
                call.wait_bridged(8)
            home = c.master_of(acd.store.keys.events())
            assert home is not None
            time.sleep(0.3)  # the replica has the latest writes (asynchronous replication)
            home.kill()
            wait_for(lambda: c.master_of(acd.store.keys.events()) not in (None, home),
                     timeout=30, what="replica promoted")  # fmt: skip
            for call in calls:
                call.wait_hangup(30)
            late = acd.fs.place_call(destination="5000", caller_number="+4922129191009")
            late.wait_bridged(15)
            late.hangup()
            wait_for(acd.all_agents_free, timeout=20, what="agents free")
            ended = {e["call"]: e["outcome"] for e in acd.events("call-ended")}
            assert [ended[call.uuid] for call in calls] == ["answered"] * 3
            assert ended[late.uuid] == "answered"
        finally:
            acd.stop()
    finally:
        c.stop()
