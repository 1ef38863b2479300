"""`python -m conformance.demo` ends with the status `smictl conformance run` uses: 0 when it
ran its course, 1 when the mesh could not start, 128+N when signal N stopped it (it said
"interrupted ... done" and exited 0), and it stops every process it started in each case."""

from __future__ import annotations

import faulthandler
import io
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conformance import demo
from conformance.targets.base import TargetError


class _FakeDemo:
    """Stands in for the mesh: `start` does what the test asks, `stop` is recorded."""

    behaviour = "finish"
    stopped: list[bool] = []

    def __init__(self, opts: demo.Options, workdir: Path, out: Any) -> None:
        self.opts = opts

    def start(self) -> None:
        if self.behaviour == "fail":
            raise TargetError("the control plane did not start")
        if self.behaviour.startswith("SIG"):
            os.kill(os.getpid(), signal.Signals[self.behaviour])
            time.sleep(5)  # the signal arrives here
            pytest.fail("the signal did not stop the demo")

    def run(self) -> None:
        pass

    def stop(self) -> None:
        type(self).stopped.append(True)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[_FakeDemo]:
    monkeypatch.setattr(demo, "Demo", _FakeDemo)
    monkeypatch.setattr(faulthandler, "register", lambda *a, **k: None)
    _FakeDemo.stopped = []
    return _FakeDemo


def _main(monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    code = demo.main(["--plain", "--duration", "1"])
    return code, out.getvalue()


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_ends_the_demo_with_128_plus_its_number(
    fake: type[_FakeDemo], monkeypatch: pytest.MonkeyPatch, sig: str, code: int
) -> None:
    fake.behaviour = sig
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    status, text = _main(monkeypatch)
    assert status == code
    assert f"interrupted by {sig}" in text and "stopping every process" in text
    assert "done" not in text
    assert fake.stopped == [True]
    # The signal dispositions are the caller's again afterwards.
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_demo_that_ran_its_course_exits_0(
    fake: type[_FakeDemo], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.behaviour = "finish"
    assert _main(monkeypatch) == (0, "stopping every process the demo started ...\ndone\n")
    assert fake.stopped == [True]


def test_a_mesh_that_did_not_start_exits_1(
    fake: type[_FakeDemo], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.behaviour = "fail"
    status, text = _main(monkeypatch)
    assert status == 1 and "demo failed: the control plane did not start" in text
    assert fake.stopped == [True]
