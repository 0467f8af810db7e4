"""Structured logging: a short lowercase message plus named fields.

`info("dispatch created", dispatch_id=3, repository="o/r")` prints a JSON line
in production and a readable line on a terminal. No caller passes a token,
key, secret or signature, and no payload is logged at INFO.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER = logging.getLogger("twill_bridge")


def _emit(level: int, message: str, fields: dict[str, Any]) -> None:
    if LOGGER.isEnabledFor(level):
        # exc_info=True attaches the exception being handled, as logging does.
        exc_info = fields.pop("exc_info", None)
        LOGGER.log(level, message, exc_info=exc_info, extra={"fields": fields})


def debug(message: str, **fields: Any) -> None:
    """Log a step at DEBUG."""
    _emit(logging.DEBUG, message, fields)


def info(message: str, **fields: Any) -> None:
    """Log a step at INFO."""
    _emit(logging.INFO, message, fields)


def warning(message: str, **fields: Any) -> None:
    """Log a step at WARNING."""
    _emit(logging.WARNING, message, fields)


def error(message: str, **fields: Any) -> None:
    """Log a step at ERROR."""
    _emit(logging.ERROR, message, fields)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level message key=value ...`, for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", style: str = "auto") -> None:
    """Send the bridge's and uvicorn's logs to stderr in one format."""
    if style == "auto":
        style = "text" if sys.stderr.isatty() else "json"
    # Neither format shows the caller's file and line, thread or process, so
    # records need not look them up: the "Optimization" section of the logging
    # HOWTO names these switches (the frame walk is a third of a record's cost).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if style == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One access line per webhook request adds nothing the bridge's own lines lack.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for chatty in ("httpx", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
