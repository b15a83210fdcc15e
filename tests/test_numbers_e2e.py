"""Verifying a caller-ID number by a call through FreeSWITCH (the stand-in), from the CLI."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.standin import FakeFreeSwitch
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import wait_for

NUMBER = "+4922129191999"


def test_verify_by_call_speaks_a_code_that_confirms_the_number(redis_url, tmp_path):
    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), heartbeat_interval=None).start()
    try:
        fs.phones.register("sofia/gateway/trunk1/*", P.answers(after=0.1, talk=10))
        host, port = fs.inbound_address
        cfg = tmp_path / "fsacd.toml"
        cfg.write_text(f"""
[redis]
url = "{redis_url}"
[freeswitch]
inbound = "{host}:{port}"
password_env = "TEST_ESL_PW"
[numbers]
network_number = "+4922199000"
pai_host = "pbx.example"
gateway = "trunk1"
[queues.sales]
""")
        run = CliRunner(env={"TEST_ESL_PW": "ClueCon"}).invoke
        base = ["--config", str(cfg), "numbers"]
        assert run(main, [*base, "add", NUMBER, "--queue", "sales"]).exit_code == 0
        res = run(main, [*base, "verify", NUMBER, "--via", "call", "--json"])
        assert res.exit_code == 0, res.output
        leg = wait_for(
            lambda: next((lg for lg in fs.legs if NUMBER in lg.endpoint), None),
            what="the verification call",
        )
        spoken = wait_for(
            lambda: [
                d for _, what, d in leg.channel.log if what == "execute" and d.startswith("say ")
            ],
            what="the code spoken",
        )
        code = re.search(r"(\d{4,})\s*$", spoken[0]).group(1)
        assert (
            run(
                main, [*base, "confirm", NUMBER, "000000" if code != "000000" else "111111"]
            ).exit_code
            == 1
        )  # a wrong code is refused
        res = run(main, [*base, "confirm", NUMBER, code, "--json"])
        assert res.exit_code == 0, res.output
        listed = json.loads(run(main, [*base, "list", "--json"]).output)["numbers"]
        entry = next(e for e in listed if e["number"] == NUMBER)
        assert entry["state"] == "verified"
    finally:
        fs.stop()
