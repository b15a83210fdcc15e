"""A running controller + stand-in (tests/acd_harness.py) and the CLI pointed at them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fsacd.cli.main import main
from tests.acd_harness import BASE_CONFIG, DEFAULT_QUEUES, Acd

EXTRA = """
[supervisor]
contact = "user/sup1@pbx.example"
ring_timeout = 10

[agents]
break_reasons = ["break", "lunch", "coaching"]
"""


class Floor:
    """``acd``: controller and stand-in; ``cli(...)``: ``fsacd --config FILE ...``."""

    def __init__(self, redis_url: str, tmp_path, queues: str = DEFAULT_QUEUES) -> None:
        self.acd = Acd(redis_url, queues=queues)
        host, port = self.acd.fs.inbound_address
        text = BASE_CONFIG.format(
            redis_url=redis_url, queues=queues, controller_id="cli-test", inbound=f"{host}:{port}"
        ).replace('"5002" = "queue:nowhere-yet"\n', "")
        self.path = tmp_path / "fsacd.toml"
        self.path.write_text(text + EXTRA)
        self.redis_url = redis_url
        self.runner = CliRunner()

    def cli(self, *args: str, input: str | None = None):
        return self.runner.invoke(
            main,
            ["--config", str(self.path), *args],
            env={"REDIS_URL": self.redis_url, "FSACD_TEST_ESL_PASSWORD": "ClueCon"},
            input=input,
        )

    def ok(self, *args: str, input: str | None = None):
        res = self.cli(*args, input=input)
        assert res.exit_code == 0, (res.output, res.exception)
        return res

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--json").stdout)

    def stop(self) -> None:
        self.acd.stop()
