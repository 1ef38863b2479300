"""JSON logs: one line per request (`smictl.access`) and per admission decision
(`smictl.decision`), so that a log pipeline can index them without parsing prose.

Handlers are attached once per process to the two named loggers (stderr, which gunicorn and
Kubernetes collect); `create_app` calls `configure` and tests read the records with caplog.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

ACCESS = "smictl.access"
DECISION = "smictl.decision"
SERVER = "smictl.server"


class JSONFormatter(logging.Formatter):
    """The record's `fields` (a dict passed through `extra`) as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "log": record.name,
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        else:
            doc["msg"] = record.getMessage()
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


def configure(level: int = logging.INFO) -> None:
    """Attach the JSON stderr handler to our loggers (idempotent)."""
    for name in (ACCESS, DECISION, SERVER):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(getattr(h, "_smictl", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JSONFormatter())
            handler._smictl = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.propagate = True


def emit(name: str, fields: dict[str, Any], *, level: int = logging.INFO) -> None:
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def now() -> float:
    return time.perf_counter()
