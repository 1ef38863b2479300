"""Which form of the request path runs: the modules compiled with mypyc, or their sources.

setup.py compiles the request-path modules into C extensions that sit beside their sources
(`proxy/server.cpython-311-....so` next to `proxy/server.py`) and records a digest of each
source in `proxy/native.json`. Python imports an extension before a source of the same name,
so a checkout edited after it was built would silently run the old machine code; and the
compiled modules call each other directly, so they must all be of one build. Hence one
decision per process, made by `proxy/__init__` before any of them is imported:

- compiled, when the manifest's sources all still match and every extension present is in it;
- sources (a finder placed first on `sys.meta_path` loads each `proxy.<module>` from its
  `.py`) when SMICTL_PURE_PYTHON is set, or the build is stale (with a warning naming the
  first changed file and how to rebuild), or nothing was compiled.

`state()` says which, for the start-up log line, the admin `/config` page and the benchmarks.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

from smi.digest import sha256_hex

# os.path, not pathlib: pathlib brings urllib.parse and ipaddress (~0.9 MB resident together),
# which nothing else in the proxy needs.
PACKAGE = os.path.dirname(os.path.realpath(__file__))
MANIFEST_NAME = "native.json"
MANIFEST = os.path.join(PACKAGE, MANIFEST_NAME)
LIBRARY = f"{__name__}__mypyc"  # the shared library: setup.py names the build after this module
_state = "pure"  # "compiled" | "pure" | "pure: <why>"


def state() -> str:
    return _state


def compiled() -> bool:
    return _state == "compiled"


def _extensions() -> dict[str, str]:
    """`proxy.<name>` -> its C extension file, for every extension in the package."""
    found: dict[str, str] = {}
    for entry in os.listdir(PACKAGE):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:  # the most specific first
            if entry.endswith(suffix):
                found[f"proxy.{entry.removesuffix(suffix)}"] = os.path.join(PACKAGE, entry)
                break
    return found


def _stale(modules: dict[str, str], present: dict[str, str]) -> str | None:
    """Why the compiled modules must not run, or None when they may."""
    extra = set(present) - set(modules) - {LIBRARY}
    if extra:
        return f"{sorted(extra)[0]} is compiled but not listed in {MANIFEST_NAME}"
    for name, digest in sorted(modules.items()):
        source = f"{name.removeprefix('proxy.')}.py"
        try:
            with open(os.path.join(PACKAGE, source), "rb") as f:
                now = sha256_hex(f.read())
        except OSError:
            return f"{source} is missing"
        if now != digest:
            return f"{source} changed after it was compiled"
        if name not in present:
            return f"{name} is listed in {MANIFEST_NAME} but not compiled"
    return None


class _SourcesFirst:
    """A meta-path finder: `proxy.<module>` from its `.py`, even where an extension exists."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        source = os.path.join(PACKAGE, f"{name}.py")
        if package != "proxy" or not os.path.isfile(source):
            return None
        # Imported here, after the check above: only the sources need it, and importing it
        # comes back through this finder (for `importlib.util` itself), which must decline.
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, source)


def _use_sources(why: str) -> None:
    global _state  # noqa: PLW0603 - decided once per process
    _state = f"pure: {why}"
    if not any(isinstance(f, _SourcesFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())


def select() -> None:
    """Decide, once, before any request-path module is imported (see the module docstring)."""
    global _state  # noqa: PLW0603 - decided once per process
    present = _extensions()
    if os.environ.get("SMICTL_PURE_PYTHON", "") not in ("", "0"):
        _use_sources("SMICTL_PURE_PYTHON is set")
        return
    if not present:
        _state = "pure: not compiled"
        return
    try:
        with open(MANIFEST, encoding="utf-8") as f:
            modules = dict(json.loads(f.read())["modules"])
    except (OSError, ValueError, KeyError, TypeError):
        modules = {}
    why = _stale(modules, present) if modules else f"{MANIFEST_NAME} is missing or unreadable"
    if why is None:
        _state = "compiled"
        return
    warnings.warn(
        f"proxy: running the pure-Python request path: {why} "
        "(rebuild with `make install`, or `pip install -e .`)",
        RuntimeWarning,
        stacklevel=2,
    )
    _use_sources(why)
