"""Stdlib logging as one JSON object per line, configured once in ``main``.

Every line has ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, the
``service`` name, and the ``request_id`` of the call being served when there
is one, so application lines and the access log line of a call join up.
Keyword context goes in ``extra``: ``log.info("stock reserved",
extra={"item_id": item_id, "qty": 2})`` adds ``item_id`` and ``qty``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from mesh.context import current_request_id

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats records as single-line JSON objects."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            entry["service"] = self.service
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", *, service: str = "", stream: IO[str] | None = None
) -> None:
    """Send all logging to ``stream`` (stderr by default) as JSON lines.

    Replaces the root logger's handlers, so calling it again reconfigures
    rather than duplicating lines.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # grpc's Cython layer logs every call at DEBUG; that is noise even when
    # debugging a service.
    logging.getLogger("grpc._cython").setLevel(max(root.level, logging.INFO))
