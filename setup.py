"""Build the proxy's request path as C extensions with mypyc; pure Python when that cannot be done.

Everything else about the package is in pyproject.toml. This file exists only because the
compiled modules (`ext_modules`) cannot be declared there.

Why mypyc: the proxy's throughput is bounded by one core's CPU per request, and about half of
the user-space part of it is the CPython interpreter running the protocol code (measured with
perf on the plain hop; docs/proxy.md). mypyc compiles the same typed modules (no second
implementation to keep in step, no hand-written C parser on a hostile input: HTTP parsing
stays in httptools' llhttp) and is maintained with mypy, which already type-checks them.

What is compiled is `NATIVE` below, in one shared library (`proxy/native__mypyc`: calls
between the modules are direct C calls). `proxy.native` decides at import which form runs:
the compiled one only when every module's source still matches the digest recorded here at
build time, so an edited checkout never runs stale machine code.

Set SMICTL_PURE_PYTHON=1 to build without compiling. A build that cannot compile (no C
compiler, no Python headers, a mypyc error) warns and installs pure Python: the proxy then
runs the same modules interpreted, slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# The request path: the downstream protocol, the upstream connections and pool, per-request
# state, header rules, back-pressure, deadlines, routing decisions, counters and the TLS layer.
NATIVE = (
    "proxy/exchange.py",
    "proxy/flow.py",
    "proxy/http1.py",
    "proxy/lists.py",
    "proxy/metrics.py",
    "proxy/relay.py",
    "proxy/routing.py",
    "proxy/server.py",
    "proxy/simplehead.py",
    "proxy/state.py",
    "proxy/tlslayer.py",
    "proxy/upstream.py",
)
MANIFEST = ROOT / "proxy" / "native.json"  # read by proxy.native


def _warn(message: str) -> None:
    print(f"smictl: {message}; the proxy is installed as pure Python", file=sys.stderr)


def _digest(path: str) -> str:
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def _native_extensions() -> list[Any]:
    MANIFEST.unlink(missing_ok=True)
    if os.environ.get("SMICTL_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not installed")
        return []
    # No config file: the project's mypy settings load the pydantic plugin, and this build
    # environment holds only what [build-system] requires. Nor the installing environment's
    # packages (a fresh one has none yet, and the result must not depend on it): they are typed
    # as Any, and errors that causes in the modules merely imported (smi's pydantic models)
    # are not reported. `make lint` type-checks everything strictly, with the packages.
    options = [
        "--config-file=",
        "--no-site-packages",
        "--ignore-missing-imports",
        "--follow-imports=silent",
        "--python-version=3.11",
    ]
    cwd = Path.cwd()
    os.chdir(ROOT)  # mypyc names modules from paths relative to the working directory
    try:
        # The group (so the shared library, proxy.native__mypyc) is named after proxy.native,
        # which reads the manifest and knows the library by that name.
        extensions: list[Any] = mypycify([*options, *NATIVE], group_name="proxy.native")
    except (Exception, SystemExit) as exc:
        _warn(f"mypyc could not compile the proxy ({exc})")
        return []
    finally:
        os.chdir(cwd)
    modules = {path.removesuffix(".py").replace("/", "."): _digest(path) for path in NATIVE}
    MANIFEST.write_text(json.dumps({"modules": modules}, indent=1, sort_keys=True) + "\n")
    return extensions


class OptionalBuildExt(build_ext):
    """Compiling is an optimisation: when the C compiler fails, install pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            _warn(f"the C build failed ({exc})")
            for ext in self.extensions:  # no half-built set (in the build or the tree)
                for built in (self.get_ext_fullpath(ext.name), self.get_ext_filename(ext.name)):
                    (ROOT / built).unlink(missing_ok=True)
            MANIFEST.unlink(missing_ok=True)
            self.extensions = []


setup(ext_modules=_native_extensions(), cmdclass={"build_ext": OptionalBuildExt})
