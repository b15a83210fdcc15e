"""``fsacd doctor`` against the FreeSWITCH stand-in over its real inbound socket."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.standin import FakeFreeSwitch

CONFIG = """
[server]
listen = "127.0.0.1:{listen}"

[redis]
url = "{redis_url}"

[freeswitch]
inbound = "127.0.0.1:{inbound}"
password_env = "FSACD_TEST_ESL_PASSWORD"

[numbers]
gateway = "trunk1"

[queues.support]
callback_key = "5"

[ivr.main]
prompt = ["say:Press one", "ivr/ivr-welcome.wav"]
options = {{ "1" = "queue:support" }}

[routes]
"5000" = "ivr:main"
"""

SOUNDS = "/usr/share/freeswitch/sounds"
NEEDED = [
    "ivr/ivr-welcome.wav",
    "ivr/ivr-enter_destination_telephone_number.wav",
    "ivr/ivr-that_was_an_invalid_entry.wav",
    "ivr/ivr-thank_you.wav",
    *[f"digits/{d}.wav" for d in "0123456789"],
]


@pytest.fixture
def fs():
    switch = FakeFreeSwitch(socket_target=("127.0.0.1", 8099), inbound=("127.0.0.1", 0))
    switch.start()
    yield switch
    switch.stop()


def doctor(fs, redis_url, tmp_path, password="ClueCon"):
    path = tmp_path / "fsacd.toml"
    path.write_text(CONFIG.format(listen=8099, redis_url=redis_url, inbound=fs.inbound_address[1]))
    res = CliRunner().invoke(
        main,
        ["--config", str(path), "doctor", "--json"],
        env={"FSACD_TEST_ESL_PASSWORD": password},
    )
    return res.exit_code, json.loads(res.stdout)


def by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_a_switch_without_sound_files_or_tts_fails_with_what_to_fix(fs, redis_url, tmp_path):
    code, report = doctor(fs, redis_url, tmp_path)
    assert code == 1 and report["ok"] is False
    checks = by_name(report)
    assert checks["event socket 127.0.0.1:" + str(fs.inbound_address[1])]["status"] == "ok"
    assert checks["module mod_local_stream"]["status"] == "ok"
    assert checks["hold-music stream moh"]["status"] == "ok"
    assert checks["module mod_flite"]["status"] == "fail"
    assert "load mod_flite" in checks["module mod_flite"]["fix"]
    missing = {
        n for n, c in checks.items() if n.startswith("prompt file ") and c["status"] == "fail"
    }
    assert missing == {f"prompt file {SOUNDS}/{p}" for p in NEEDED}
    assert checks["dialplan socket extension"]["status"] == "ok"


def test_a_complete_switch_passes(fs, redis_url, tmp_path):
    fs.modules.add("mod_flite")
    fs.files.update(f"{SOUNDS}/{p}" for p in NEEDED[:4])
    # mod_sndfile's rate folders count too
    fs.files.update(f"{SOUNDS}/digits/8000/{d}.wav" for d in "0123456789")
    code, report = doctor(fs, redis_url, tmp_path)
    failed = [c for c in report["checks"] if c["status"] != "ok"]
    assert code == 0 and report["ok"] is True and failed == []


def test_missing_music_stream_module_and_dialplan(fs, redis_url, tmp_path):
    fs.local_streams.clear()
    fs.modules.discard("mod_sndfile")
    fs.socket_target = ("127.0.0.1", 9999)
    code, report = doctor(fs, redis_url, tmp_path)
    checks = by_name(report)
    assert code == 1
    assert checks["hold-music stream moh"]["status"] == "fail"
    assert "local_stream.conf.xml" in checks["hold-music stream moh"]["fix"]
    assert checks["module mod_sndfile"]["status"] == "fail"
    assert checks["dialplan socket extension"]["status"] == "warn"
    assert "127.0.0.1:8099 async full" in checks["dialplan socket extension"]["fix"]


def test_a_wrong_password_is_the_one_failure_named(fs, redis_url, tmp_path):
    code, report = doctor(fs, redis_url, tmp_path, password="wrong")
    assert code == 1
    first, rest = report["checks"]
    assert first["status"] == "fail" and "FSACD_TEST_ESL_PASSWORD" in first["detail"]
    assert rest["status"] == "skip"


RECORDING = """
[queues.support]
recording = "ask"
recording_notice = "tone_stream://%(100,0,600)"
"""


def test_the_recordings_directory_is_tried_by_freeswitch_itself(fs, redis_url, tmp_path):
    from fsacd.standin import PhoneBehaviour as P

    fs.phones.register("null/fsacd-doctor", P.answers())  # FreeSWITCH's null endpoint
    fs.modules.add("mod_flite")
    fs.files.update(f"{SOUNDS}/{p}" for p in NEEDED)
    path = tmp_path / "fsacd.toml"
    text = CONFIG.format(listen=8099, redis_url=redis_url, inbound=fs.inbound_address[1])
    path.write_text(text.replace("[queues.support]\n", RECORDING))
    env = {"FSACD_TEST_ESL_PASSWORD": "ClueCon"}
    name = f"recordings directory {fs.recordings_dir}"

    def check():
        res = CliRunner().invoke(main, ["--config", str(path), "doctor", "--json"], env=env)
        return res.exit_code, by_name(json.loads(res.stdout))[name]

    code, c = check()
    assert code == 0 and c["status"] == "ok" and "a test recording started" in c["detail"]
    fs.unwritable.add(fs.recordings_dir)
    code, c = check()
    assert code == 1 and c["status"] == "fail" and "cannot open a recording" in c["detail"]
    assert not [ch for ch in fs.all_channels.values() if ch.up()]  # the test leg is gone
