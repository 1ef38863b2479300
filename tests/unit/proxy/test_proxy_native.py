"""proxy.native: the compiled request path runs only when it is whole and matches its sources.

`make test` builds the package (setup.py compiles the request path with mypyc) and runs the
suite twice: as built, with SMICTL_REQUIRE_NATIVE=1, where these tests insist that the compiled
modules are the ones running; then the proxy's unit tests with SMICTL_PURE_PYTHON=1, on the
sources. The guard against stale builds is exercised on a copy of the package, in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import proxy
from proxy import native

PACKAGE = Path(proxy.__file__).resolve().parent
REQUEST_PATH = (
    "exchange",
    "flow",
    "http1",
    "lists",
    "metrics",
    "relay",
    "routing",
    "server",
    "simplehead",
    "state",
    "tlslayer",
    "upstream",
)

pure_requested = os.environ.get("SMICTL_PURE_PYTHON", "") not in ("", "0")
built = bool(native._extensions())
needs_build = pytest.mark.skipif(
    not built and not os.environ.get("SMICTL_REQUIRE_NATIVE"),
    reason="the package was installed without compiling (SMICTL_PURE_PYTHON at build time)",
)


def _loaded_from(name: str) -> str:
    module = sys.modules.get(f"proxy.{name}") or __import__(f"proxy.{name}", fromlist=["_"])
    return Path(module.__file__ or "").name


def test_the_request_path_runs_in_the_form_this_run_asked_for() -> None:
    __import__("proxy.server")
    if pure_requested:
        assert native.state() == "pure: SMICTL_PURE_PYTHON is set"
        assert {_loaded_from(n) for n in REQUEST_PATH} == {f"{n}.py" for n in REQUEST_PATH}
    elif os.environ.get("SMICTL_REQUIRE_NATIVE"):
        assert native.state() == "compiled", native.state()
        assert native.compiled()
        for name in REQUEST_PATH:
            assert _loaded_from(name).startswith(f"{name}.cpython-"), name
    else:
        assert native.state() == "compiled" or native.state().startswith("pure: ")


@needs_build
def test_the_manifest_lists_exactly_the_compiled_modules() -> None:
    manifest = json.loads((PACKAGE / "native.json").read_text())
    assert sorted(manifest["modules"]) == sorted(f"proxy.{n}" for n in REQUEST_PATH)
    present = set(native._extensions()) - {native.LIBRARY}
    assert present == set(manifest["modules"])
    assert native._stale(manifest["modules"], native._extensions()) is None


def _state_in_copy(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[str, str, str]:
    """(state, file proxy.server was loaded from, stderr) of a fresh interpreter importing
    the copy of the package in tmp_path."""
    code = (
        "import proxy.server, proxy.native; "
        "print(proxy.native.state()); print(proxy.server.__file__)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # (`-c` puts the working directory first on sys.path)
        env=os.environ | {"PYTHONPATH": str(tmp_path), "SMICTL_PURE_PYTHON": ""} | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    state, loaded = run.stdout.splitlines()
    return state, loaded, run.stderr


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "proxy", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@needs_build
def test_an_intact_copy_runs_compiled(copy: Path) -> None:
    state, loaded, stderr = _state_in_copy(copy)
    assert state == "compiled"
    assert Path(loaded).name.startswith("server.cpython-")
    assert stderr == ""


@needs_build
def test_a_source_edited_after_the_build_runs_every_module_from_source(copy: Path) -> None:
    relay = copy / "proxy" / "relay.py"
    relay.write_text(relay.read_text() + "\n# edited\n")
    state, loaded, stderr = _state_in_copy(copy)
    assert state == "pure: relay.py changed after it was compiled"
    # Not only relay: the compiled modules call each other directly, so all go together.
    assert loaded == str(copy / "proxy" / "server.py")
    assert "RuntimeWarning" in stderr and "relay.py changed" in stderr and "make install" in stderr


@needs_build
def test_a_missing_or_foreign_manifest_entry_runs_from_source(copy: Path) -> None:
    manifest = copy / "proxy" / "native.json"
    data = json.loads(manifest.read_text())
    del data["modules"]["proxy.flow"]
    manifest.write_text(json.dumps(data))
    state, loaded, _ = _state_in_copy(copy)
    assert state.startswith("pure: proxy.flow")
    assert loaded.endswith("server.py")
    manifest.write_text("{not json")
    state, _, _ = _state_in_copy(copy)
    assert state == "pure: native.json is missing or unreadable"


@needs_build
def test_smictl_pure_python_forces_the_sources(copy: Path) -> None:
    state, loaded, stderr = _state_in_copy(copy, {"SMICTL_PURE_PYTHON": "1"})
    assert state == "pure: SMICTL_PURE_PYTHON is set"
    assert loaded.endswith("server.py")
    assert stderr == ""  # asked for: no warning


def test_a_package_without_extensions_is_pure_without_a_warning(tmp_path: Path) -> None:
    shutil.copytree(
        PACKAGE,
        tmp_path / "proxy",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "native.json"),
    )
    state, loaded, stderr = _state_in_copy(tmp_path)
    assert state == "pure: not compiled"
    assert loaded.endswith("server.py")
    assert stderr == ""
