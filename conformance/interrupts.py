"""Turning SIGINT, SIGTERM and SIGHUP into an orderly stop of a conformance run.

The servers a run starts lead their own sessions (so a gunicorn master and its workers end
together), which also means a Ctrl-C at the terminal or a `kill` of smictl never reaches them:
only smictl's own cleanup (`Target.stop`) ends them. Python's default SIGTERM and SIGHUP
dispositions end the interpreter without running any cleanup, and a shell's background job
starts with SIGINT ignored; both would leave the control plane and every proxy running.
Here each of these signals raises `Interrupted` in the main thread instead, so the `finally`
blocks and `Target.__exit__` run, and a second signal during that cleanup is ignored rather
than cutting it short (every wait in the cleanup is bounded, and SIGKILL still works).

An exception can only be raised between two Python operations, and some of those pairs must not
be split: `subprocess.Popen` learns its child's pid from a call that has already forked, so a
signal handled just after that call leaves a running server that nobody holds and nobody
stops. `signals_held` defers the signals for such a stretch and delivers them once it is over.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Held as well: the step deadline's timer (conformance.deadline) raises from its handler too.
HELD: tuple[signal.Signals, ...] = (*SIGNALS, signal.SIGALRM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `signum` says which."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process a signal ended."""
        return 128 + self.signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, the first of SIGNALS raises `Interrupted`; later ones are ignored
    until the block is left. Outside the main thread (where Python cannot set handlers) this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:
            return  # already stopping: let the cleanup finish
        fired.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def signals_held() -> Iterator[None]:
    """Within the block, SIGNALS and SIGALRM are recorded instead of handled; on leaving it, the
    handlers are put back and the first one recorded is raised again, so it takes effect there
    (an `Interrupted` from `stop_on_signals`, the default action where no handler is set).
    Outside the main thread (where Python cannot set handlers, nor runs them) this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {s: signal.getsignal(s) for s in HELD}
    try:
        for s in HELD:
            signal.signal(s, hold)
        yield
    finally:
        # Blocked while the handlers are put back: one handled halfway would raise out of
        # this loop and leave the rest holding signals for good.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
        try:
            for s, h in previous.items():
                if h is not None:  # None: a handler not set from Python; cannot be put back
                    signal.signal(s, h)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # handles one that came meanwhile
        if held:
            signal.raise_signal(held[0])
