"""Structured (JSON lines) logging for the long-running components."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# kopf attaches its whole settings object and a posting flag to every object-related record
_SKIP = _STANDARD | {"settings", "k8s_skip"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _SKIP:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr; ``$DLC_GUARD_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR) overrides ``level``."""
    named = logging.getLevelNamesMapping().get(os.environ.get("DLC_GUARD_LOG_LEVEL", "").upper())
    if named is not None:
        level = named
    # records carry no caller, thread or process details: they are not in the output, and
    # finding the caller walks the stack on every record
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
