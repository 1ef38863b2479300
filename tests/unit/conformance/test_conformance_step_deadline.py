"""Every step has a deadline: a mesh that hangs on a hostile regex (a backtracking matcher
swapped in for RE2) fails that step with a clear line, and the run goes on; a matcher that
answers, but slowly, fails the hostile-regex scenario's time bound. The suite used to wait
forever on the first and pass the second."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.catalog import discover
from conformance.deadline import StepTimeout, deadline
from conformance.model import Scenario
from conformance.runner import run
from conformance.targets.inproc import InprocTarget
from smi.compiler.ir import matching

HOSTILE = "access/hostile-regex.access-v1alpha3.specs-v1alpha4"
PATHS = "access/path-matching.access-v1alpha3.specs-v1alpha4"


def _backtracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """smictl's regexes compiled by Python `re`, which backtracks, instead of RE2."""
    monkeypatch.setattr(matching.RegexCache, "get", lambda self, pattern: re.compile(pattern))


def _slow(monkeypatch: pytest.MonkeyPatch, *, delay: float) -> None:
    """smictl's RE2 regexes, each match `delay` seconds slower."""
    original = matching.RegexCache.get

    class Slow:
        def __init__(self, compiled: Any) -> None:
            self._compiled = compiled

        def __getattr__(self, name: str) -> Any:
            found = getattr(self._compiled, name)
            if not callable(found):
                return found

            def slow(*args: Any, **kwargs: Any) -> Any:
                time.sleep(delay)
                return found(*args, **kwargs)

            return slow

    def get(self: matching.RegexCache, pattern: str) -> Any:
        compiled = original(self, pattern)
        return None if compiled is None else Slow(compiled)

    monkeypatch.setattr(matching.RegexCache, "get", get)


def _failure(target: InprocTarget, names: list[str]) -> tuple[list[str], str, float]:
    scenarios = discover(patterns=names, smi_version="all")
    t0 = time.monotonic()
    result = run([target], scenarios)
    took = time.monotonic() - t0
    statuses = [f"{r.scenario} {r.status}" for r in result.results]
    text = "\n".join(r.failure_text() for r in result.results if r.status == "failed")
    return statuses, text, took


@pytest.mark.timeout(60)
def test_a_hanging_step_fails_at_its_deadline_and_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _backtracking(monkeypatch)
    target = InprocTarget()
    target.step_timeout = 1.0
    statuses, text, took = _failure(target, [HOSTILE, PATHS])
    assert statuses == [f"{HOSTILE} failed", f"{PATHS} passed"]
    assert "  step 3 (request) 3x GET /aaaa" in text
    assert "finished: expected within 1 s (the step deadline), got still running after 1 s" in text
    assert took < 20


@pytest.mark.timeout(60)
def test_a_slow_answer_to_the_hostile_path_fails_its_time_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _slow(monkeypatch, delay=0.8)  # 3 requests: 2.4 s, more than the 2 s allowed
    target = InprocTarget()
    target.step_timeout = 30.0
    statuses, text, _ = _failure(target, [HOSTILE])
    assert statuses == [f"{HOSTILE} failed"]
    assert re.search(r"answered: expected within 2 s, got 2\.\d\d s", text)


def test_the_shipped_hostile_regex_scenarios_bound_the_answer_time() -> None:
    scenarios: list[Scenario] = discover(patterns=["access/hostile-regex.*"], smi_version="all")
    assert len(scenarios) == 5
    for s in scenarios:
        hostile = s.steps[-1]
        assert hostile.expect.within == 2, s.name


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_timer_already_set_still_fires_and_keeps_its_time() -> None:
    fired: list[float] = []
    previous: Callable[..., Any] | int | None = signal.signal(
        signal.SIGALRM, lambda *_: fired.append(time.monotonic())
    )
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with deadline(5.0):
            _busy(0.1)
        assert fired == []
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0.05 < left <= 0.2  # what was left of the outer timer, set again
        _busy(0.4)
        assert len(fired) == 1 and 0.25 < fired[0] - start < 0.45
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(StepTimeout), deadline(0.3):
            _busy(1.0)  # the outer timer fires first, through its own handler; then ours
        assert len(fired) == 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
