"""`make demo ARGS=--keep` prints how to apply a change with a command that runs from the
shell it was started in: `make` runs smictl from .venv, which is not on PATH, so the bare
`smictl apply ...` it printed was `command not found`."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance import demo


class _Stop(Exception):
    pass


def test_the_kept_mesh_hint_names_a_smictl_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    opts = demo.Options(duration=1, rate=1, keep=True, examples=demo.EXAMPLES, live=False)
    shown = demo.Demo(opts, tmp_path, out)
    shown.plane.url = "https://127.0.0.1:8443"
    shown.slots = {  # type: ignore[dict-item]
        name: SimpleNamespace(outbound=15001, admin=15090) for name in ("frontend", "intruder")
    }

    def stop(_: float) -> None:
        raise _Stop

    monkeypatch.setattr(demo.time, "sleep", stop)
    with pytest.raises(_Stop):
        shown.keep()
    # (`demo.time` is the time module: `subprocess.run` below polls with `time.sleep` whenever
    # the child is still running, as on a busy machine, and would stop there.)
    monkeypatch.undo()
    [line] = [x for x in out.getvalue().splitlines() if "apply a change" in x]
    command = line.split("apply a change", 1)[1].split()
    program = command[0]
    assert os.sep in program and os.access(program, os.X_OK), line  # before: `smictl`
    assert command[1:3] == ["apply", "--server"]
    ran = subprocess.run(
        [program, "version"], check=False, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0 and ran.stdout.startswith("smictl ")
