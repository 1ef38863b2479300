"""The per-step deadline: a step that does not finish in time is abandoned, so a mesh that
hangs (a backtracking regex on a hostile path, a server that never answers) fails that step
instead of hanging the whole run.

The step runs in the main thread under a real-time interval timer (`SIGALRM`) whose handler
raises `StepTimeout` there. A worker thread would not do: a step stuck inside C code that holds
the GIL (Python's `re` backtracking) never lets the waiting thread run again, while such code
does check for signals, so the handler interrupts it; so are blocking socket calls. A timer
already set (pytest-timeout's) keeps working: it fires through its own handler, and what is
left of it is set again afterwards. Outside the main thread, where Python cannot set signal
handlers, steps run without a deadline.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class StepTimeout(BaseException):
    """The step ran past its deadline. A BaseException, so target code that catches
    `Exception` around a request cannot swallow it."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `StepTimeout` in the block once `seconds` have passed."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    start = time.monotonic()
    outer_handler = signal.getsignal(signal.SIGALRM)
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer_due = start + outer_delay if outer_delay else math.inf
    fired_outer = False

    def fire(signum: int, frame: FrameType | None) -> None:
        nonlocal fired_outer
        now = time.monotonic()
        if now >= start + seconds:
            raise StepTimeout
        # The timer that was already set came due first: its handler decides, then ours is
        # set again for what is left of the step's time.
        fired_outer = True
        signal.setitimer(signal.ITIMER_REAL, start + seconds - now)
        if callable(outer_handler):
            outer_handler(signum, frame)

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(min(seconds, outer_due - start), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if outer_handler is None else outer_handler)
        if outer_delay and not fired_outer:
            left = outer_due - time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), outer_interval)
