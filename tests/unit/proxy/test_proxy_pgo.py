"""pgo.py (run by `make install`) rebuilds the compiled request path with a profile; whatever
fails on the way, the plain library it started from is what stays."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _pgo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, check_mypyc: bool = False
) -> ModuleType:
    """pgo.py on a fake library and its C in `tmp_path` (also its ROOT); the check of the
    build's mypy only if asked."""
    spec = importlib.util.spec_from_file_location("pgo_under_test", ROOT / "pgo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source, library = tmp_path / "native.c", tmp_path / "native.so"
    source.write_text("/* generated */\n")
    library.write_bytes(b"plain")
    monkeypatch.setattr(module, "SOURCE", source)
    monkeypatch.setattr(module, "LIBRARY", library)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    if not check_mypyc:
        monkeypatch.setattr(module, "_same_mypyc", lambda: None)
    return module


def _builds(module: ModuleType, calls: list[list[str]]) -> Any:
    def compile_(work: Path, profile: list[str]) -> None:
        calls.append(profile)
        kind = b"instrumented" if any("generate" in flag for flag in profile) else b"optimised"
        module.LIBRARY.write_bytes(kind)

    return compile_


def test_the_profile_is_made_then_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pgo = _pgo(tmp_path, monkeypatch)
    calls: list[list[str]] = []
    runs: list[str] = []
    monkeypatch.setattr(pgo, "_compile", _builds(pgo, calls))
    monkeypatch.setattr(pgo, "_run", lambda python, code: runs.append(code))
    assert pgo.main() == 0
    assert pgo.LIBRARY.read_bytes() == b"optimised"
    assert any(flag.startswith("-fprofile-generate=") for flag in calls[0])
    assert any(flag.startswith("-fprofile-use=") for flag in calls[1])
    assert "-fprofile-partial-training" in calls[1]  # untrained code is not made cold
    assert runs[0] == pgo.TRAINING and "native.state()" in runs[1]  # trained, then loaded


@pytest.mark.parametrize("failing", ["training", "final build", "load"])
def test_a_failure_leaves_the_plain_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    pgo = _pgo(tmp_path, monkeypatch)
    calls: list[list[str]] = []
    build = _builds(pgo, calls)

    def compile_(work: Path, profile: list[str]) -> None:
        if failing == "final build" and calls:
            raise subprocess.CalledProcessError(1, ["gcc"])
        build(work, profile)

    def run(python: str, code: str) -> None:
        if (failing == "training" and code == pgo.TRAINING) or (
            failing == "load" and code != pgo.TRAINING
        ):
            raise subprocess.CalledProcessError(1, [python])

    monkeypatch.setattr(pgo, "_compile", compile_)
    monkeypatch.setattr(pgo, "_run", run)
    assert pgo.main() == 0  # (optional: `make install` goes on)
    assert pgo.LIBRARY.read_bytes() == b"plain"


def test_nothing_to_optimise_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pgo = _pgo(tmp_path, monkeypatch)
    pgo.SOURCE.unlink()
    monkeypatch.setattr(pgo, "_compile", lambda *args: pytest.fail("built"))
    assert pgo.main() == 0
    assert pgo.LIBRARY.read_bytes() == b"plain"
    assert "left as it is" in capsys.readouterr().err


def test_the_installed_library_is_never_the_instrumented_one() -> None:
    """`make install` ran pgo.py: whatever happened, the library in the tree loads compiled
    and is not the build that writes a profile (gcov's symbols)."""
    from proxy import native

    if native.state() != "compiled":
        pytest.skip("the pure-Python run")
    library = ROOT / "proxy" / f"native__mypyc{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    assert b"__gcov" not in library.read_bytes()  # never left instrumented


def test_another_mypyc_than_the_builds_leaves_the_plain_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pgo = _pgo(tmp_path, monkeypatch, check_mypyc=True)
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools", "mypy==0.0.1"]\n'
    )
    monkeypatch.setattr(pgo, "_compile", lambda *args: pytest.fail("built"))
    assert pgo.main() == 0
    assert pgo.LIBRARY.read_bytes() == b"plain"
    assert "the build's is 0.0.1" in capsys.readouterr().err


def test_the_builds_mypyc_is_the_one_installed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `make install` relies on: pyproject.toml pins the build's mypy, and constraints.txt
    installs that same one in the venv."""
    pgo = _pgo(tmp_path, monkeypatch, check_mypyc=True)
    monkeypatch.setattr(pgo, "ROOT", ROOT)
    assert pgo._same_mypyc() is None


def test_the_training_workloads_run_the_request_path() -> None:
    """What TRAINING runs (bench_proxy.micro, micro_pair), briefly: a training that broke
    would leave every install on the plain build, with only a warning to say so. The pair
    answers only if the web side authorized the front by its certificate (MicroPair.check)."""
    import sys

    import uvloop

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_proxy
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert "micro(" in _pgo_training() and "micro_pair(" in _pgo_training()
    assert uvloop.run(bench_proxy.micro(50, 1)) > 0
    assert uvloop.run(bench_proxy.micro_pair(50, 1)) > 0


def _pgo_training() -> str:
    spec = importlib.util.spec_from_file_location("pgo_training", ROOT / "pgo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    training: str = module.TRAINING
    return training
