"""Child processes of the server targets and the demo: started in their own session (so that a
gunicorn master and its workers end together), logged to files, waited for by polling, and
always ended — SIGTERM to the child's own process group, SIGKILL after a grace period.

Only processes started here are ever signalled, by the process group this module created.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from conformance.interrupts import signals_held
from conformance.targets.base import TargetError
from conformance.targets.launch import PARENT_ENV

T = TypeVar("T")

# `smictl <command>` without relying on the installed entry-point metadata: the same register
# functions the `smictl.commands` entry points name (pyproject.toml).
LAUNCH = [sys.executable, "-m", "conformance.targets.launch"]


@dataclass
class Child:
    """One started process and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, grace: float = 5.0) -> None:
        """SIGTERM the child's group, SIGKILL it after `grace` seconds; never waits longer
        than twice `grace` and never raises, so one stuck child cannot keep the others (or
        the temporary directory) from being cleaned up."""
        if self.proc.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)

    def _signal(self, sig: signal.Signals) -> None:
        # The child leads its own session (start_new_session), so its group id is its pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start `argv` in its own session, output to `<log_dir>/<name>.log`. Call it from a thread
    that outlives the child: a launched server is sent SIGTERM when that thread ends."""
    log = log_dir / f"{name}.log"
    child: Child | None = None
    try:
        # A signal handled inside Popen (Ctrl-C, SIGTERM, the step deadline) would raise after
        # the fork but before the pid is stored: a server left running that nobody can stop.
        # It is held until `child` holds the process; one raised on leaving stops it here.
        with log.open("ab") as out, signals_held():
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # The launched servers ask to be ended when this process dies (launch.py).
                env={**os.environ, PARENT_ENV: str(os.getpid()), **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
            child = Child(name=name, proc=proc, log=log)
    except BaseException:
        if child is not None:
            child.stop()
        raise
    return child


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 20.0,
    interval: float = 0.05,
    watch: Sequence[Child] = (),
) -> T:
    """Poll `probe` until it returns a value (not None); fail if a watched child exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        for child in watch:
            if not child.alive:
                raise TargetError(
                    f"{child.name} exited (code {child.proc.returncode}) before {what}:\n"
                    f"{child.tail()}"
                )
        if time.monotonic() > deadline:
            # Only the logs that say something: an empty section reads like a cut-off message.
            tails = "".join(f"\n--- {c.name}\n{t}" for c in watch if (t := c.tail()))
            raise TargetError(f"timed out after {timeout:g} s waiting for {what}{tails}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def stop_all(children: Sequence[Child]) -> None:
    """End every child: SIGTERM to all first, so they drain in parallel, then wait."""
    for child in children:
        if child.alive:
            child._signal(signal.SIGTERM)
    for child in children:
        child.stop()
