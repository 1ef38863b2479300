"""Run regopy on a set of modules in a child process, so that a crash costs a child, not us.

rego-cpp has been seen to abort (`terminate called ... shape rego-localref has no field
rego-refhead`) or segfault on modules that a user can write, and no exception handler catches
that. Every policy set is therefore compiled (and probed, or its tests run) in a child first
(`smi.policy._child`); only a set that survived is loaded into this process.

`run(request)` returns the child's events, its exit status and what rego-cpp printed;
`SandboxRun.crash` says whether the child died and in which step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    modules: Sequence[tuple[str, str]]
    entrypoints: Sequence[str]
    data: Mapping[str, Any] = field(default_factory=dict)
    evaluate: Sequence[tuple[str, Mapping[str, Any]]] = ()
    variants: Sequence[tuple[str, str]] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "modules": [list(m) for m in self.modules],
                "entrypoints": list(self.entrypoints),
                "data": dict(self.data),
                "evaluate": [[e, dict(v)] for e, v in self.evaluate],
                "variants": [list(v) for v in self.variants],
            }
        )


@dataclass(frozen=True, slots=True)
class SandboxRun:
    events: tuple[dict[str, Any], ...]
    returncode: int
    captured: str

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].get("done") is True

    @property
    def error(self) -> dict[str, Any] | None:
        """The child's report of a RegoError (add or build stage), if any."""
        return next((e for e in self.events if "error" in e), None)

    @property
    def results(self) -> list[dict[str, Any]]:
        return [e for e in self.events if "result" in e]

    @property
    def variants(self) -> dict[int, list[str] | None]:
        """Coverage mutants: index -> entrypoints that failed (None: the mutant did not build)."""
        return {int(e["variant"]): e["failed"] for e in self.events if "variant" in e}

    @property
    def last_stage(self) -> dict[str, Any]:
        """The step the child announced last: where it was when it died."""
        return next((e for e in reversed(self.events) if "stage" in e), {})

    def crash(self) -> str | None:
        """None if the child finished; otherwise one line saying how it died."""
        if self.finished:
            return None
        how = _signal_name(self.returncode)
        detail = _crash_detail(self.captured)
        return f"the Rego engine crashed ({how}){': ' + detail if detail else ''}"


def _signal_name(returncode: int) -> str:
    if returncode == -999:
        return "timed out"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _crash_detail(captured: str) -> str:
    for line in reversed(captured.splitlines()):
        if "what():" in line:
            return line.split("what():", 1)[1].strip()
    return ""


def run(request: SandboxRequest, *, timeout: float = DEFAULT_TIMEOUT) -> SandboxRun:
    """Run one request in a fresh child; never raises for what the child does."""
    with tempfile.TemporaryDirectory(prefix="smictl-rego-") as tmp:
        capture = Path(tmp) / "captured.txt"
        capture.touch()
        env = dict(os.environ)
        # The child must import this very smictl, also when it runs from a source checkout.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "smi.policy._child", str(capture)],
                input=request.to_json(),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
            stdout, returncode = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            stdout = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
            returncode = -999
        captured = capture.read_text(encoding="utf-8", errors="replace")
    events = tuple(_events(stdout))
    return SandboxRun(events=events, returncode=returncode, captured=captured)


def _events(stdout: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a partial last line from a child that died while writing
        if isinstance(event, dict):
            out.append(event)
    return out
