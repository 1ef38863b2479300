"""Optional JSON access log, one line per sampled request.

Sampling keeps the cost off most requests: one `random()` call decides, and only sampled lines
are formatted. The path is logged without its query string (queries carry tokens).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from typing import TextIO


class AccessLog:
    def __init__(
        self, stream: TextIO, *, sample: float = 1.0, rng: Callable[[], float] = random.random
    ) -> None:
        self.stream = stream
        self.sample = sample
        self.rng = rng

    @classmethod
    def open(cls, target: str, *, sample: float) -> AccessLog:
        stream = sys.stderr if target == "-" else open(target, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        return cls(stream, sample=sample)

    def record(
        self,
        *,
        direction: str,
        peer: str | None,
        method: bytes,
        path: bytes,
        status: int,
        reason: str,
        duration_ms: float,
    ) -> None:
        if self.sample < 1.0 and self.rng() >= self.sample:
            return
        line = {
            "ts": round(time.time(), 3),
            "direction": direction,
            "peer": peer,
            "method": method.decode("latin-1"),
            "path": path.split(b"?", 1)[0].decode("latin-1"),
            "status": status,
            "reason": reason,
            "duration_ms": round(duration_ms, 3),
        }
        self.stream.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self.stream is not sys.stderr:
            self.stream.close()
