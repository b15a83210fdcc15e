"""A tiny Chrome DevTools Protocol client for headless Chromium over ``--remote-debugging-pipe``
(fd 3 in, fd 4 out, NUL-terminated JSON): open a page, evaluate JavaScript, take screenshots.
No WebSocket library needed."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import gevent
import gevent.os


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, binary: str, profile: Path, width: int = 1600, height: int = 900) -> None:
        args = [
            binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--mute-audio",
            "--remote-debugging-pipe", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "about:blank",
        ]  # fmt: skip
        # chromium reads CDP on fd 3 and writes on fd 4: the shell puts our pipes there
        cmd = " ".join(f"'{a}'" for a in args) + " 3<&0 4>&1 0</dev/null 1>/dev/null"
        self.proc = subprocess.Popen(
            ["sh", "-c", f"exec {cmd}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._out = self.proc.stdout.fileno()
        gevent.os.make_nonblocking(self._out)
        self._buf = b""
        self._id = 0
        self.session: str | None = None
        self.size = (width, height)

    def send(self, method: str, params: dict | None = None, timeout: float = 20.0) -> dict:
        """One command; its result (events in between are dropped)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        with gevent.Timeout(timeout, TimeoutError(f"CDP {method}: no answer in {timeout}s")):
            while True:
                reply = self._read()
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"CDP {method}: {reply['error']}")
                    return reply.get("result", {})

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = gevent.os.nb_read(self._out, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, url: str) -> None:
        # the first command waits for chromium to start: slow on a busy machine
        target = self.send("Target.createTarget", {"url": "about:blank"}, timeout=90)["targetId"]
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        w, h = self.size
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})

    def eval(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
