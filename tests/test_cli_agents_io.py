"""``fsacd agent import FILE.csv`` / ``fsacd agent export`` against a real Redis."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.state.store import Store

CONFIG = """
[queues.support]
[queues.sales]
"""

GOOD = """id,contact,queues,consent
1001,user/1001@pbx.example,support:1 sales:2,yes
1002,sofia/gateway/gw1/+4930123456,support,
1003,${sofia_contact(1003@pbx.example)},sales:0,no
"""


@pytest.fixture
def run(redis_url, tmp_path):
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text(CONFIG)
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(
            main, ["--config", str(cfg), *args], env={"REDIS_URL": redis_url}, input=input
        )

    return invoke


def csv_file(tmp_path, text, name="agents.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_import_creates_then_a_reimport_changes_nothing(run, r, tmp_path):
    path = csv_file(tmp_path, GOOD)
    res = run("agent", "import", path, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["created"] == ["1001", "1002", "1003"] and out["consent_changed"] == ["1001"]
    store = Store(r)
    a = store.get_agent("1001")
    assert a["queues"] == {"support": 1, "sales": 2} and a["rec_consent"] == "given"
    assert store.get_agent("1002")["queues"] == {"support": 1}
    assert store.get_agent("1003")["contact"] == "${sofia_contact(1003@pbx.example)}"
    assert store.get_agent("1001")["status"] == "logged-out"
    events_before = r.xlen(store.keys.events())
    again = json.loads(run("agent", "import", path, "--json").stdout)
    assert again["unchanged"] == ["1001", "1002", "1003"]
    assert again["created"] == again["updated"] == again["consent_changed"] == []
    assert r.xlen(store.keys.events()) == events_before
    # a changed file updates only what differs; status and counters stay
    store.login("1002")
    csv_file(
        tmp_path,
        GOOD.replace(
            "1002,sofia/gateway/gw1/+4930123456,support,", "1002,user/1002@pbx.example,sales:3,yes"
        ),
    )
    out = json.loads(run("agent", "import", path, "--json").stdout)
    assert out["updated"] == ["1002"] and out["consent_changed"] == ["1002"]
    b = store.get_agent("1002")
    assert (b["contact"], b["queues"], b["status"]) == (
        "user/1002@pbx.example",
        {"sales": 3},
        "available",
    )


def test_export_is_what_import_reads_back(run, r, tmp_path):
    run("agent", "import", csv_file(tmp_path, GOOD))
    res = run("agent", "export")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "id,contact,queues,consent"
    assert lines[1] == "1001,user/1001@pbx.example,support:1 sales:2,yes"
    assert lines[3] == "1003,${sofia_contact(1003@pbx.example)},sales:0,"  # never consented
    # into a fresh database: the same agents
    r.flushdb()
    out = json.loads(
        run("agent", "import", csv_file(tmp_path, res.stdout, "x.csv"), "--json").stdout
    )
    assert out["created"] == ["1001", "1002", "1003"]
    assert run("agent", "export").stdout == res.stdout


def test_bad_lines_are_named_and_nothing_is_imported(run, r, tmp_path):
    bad = (
        GOOD
        + "10 04,user/1004@x,support,\n"
        + "1005,user/1005@x|user/6@x,support,\n"
        + "1006,user/1006@x,support:1 nosuch,\n"
        + "1007,user/1007@x,support:one,\n"
        + "1001,user/1001@x,support,\n"
        + "1008,user/1008@x,support,maybe\n"
        + "1009,user/1009@x,,\n"
    )
    res = run("agent", "import", csv_file(tmp_path, bad))
    assert res.exit_code == 1
    err = res.stderr if hasattr(res, "stderr") else res.output
    for needle in (
        "line 5: invalid agent id '10 04'",
        "line 6: contact contains characters not allowed",
        "line 7: unknown queue 'nosuch'",
        "line 8: queue 'support:one': the position must be a whole number",
        "line 9: agent 1001 is already on line 2",
        "line 10: consent must be yes or no",
        "line 11: no queue given",
        "7 problem(s), nothing imported",
    ):
        assert needle in err, (needle, err)
    assert Store(r).list_agents() == []


def test_a_file_without_the_columns_is_refused(run, tmp_path):
    res = run("agent", "import", csv_file(tmp_path, "name,phone\nA,123\n"))
    assert res.exit_code == 1
    assert "the header needs the columns id, contact, queues (missing: id, contact, queues" in (
        res.output
    )
