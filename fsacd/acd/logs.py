"""Log lines of ``fsacd serve``: text, or JSON lines (``[log] format = "json"``) with the call
id of the line when it names one (``call <uuid>: ...``, or ``extra={"call": id}``)."""

from __future__ import annotations

import json
import logging
import re
import time

_CALL = re.compile(r"\bcall ([0-9A-Za-z][0-9A-Za-z_.@-]{7,63})\b")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, call (when known), exc."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": msg,
        }
        call = getattr(record, "call", None)
        if call is None:
            m = _CALL.search(msg)
            call = m.group(1) if m else None
        if call:
            out["call"] = str(call)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: str, fmt: str = "text") -> None:
    """Configure the root logger for ``fsacd serve``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
