"""SHA-256 for processes that have not loaded OpenSSL's digests.

`hashlib` imports `_hashlib`, whose OpenSSL set-up leaves about 0.55 MB resident — measured in
the proxy, which has a 30 MB budget and needs one SHA-256 per policy it loads (and a few of its
own sources at start). CPython's own SHA-256 (`_sha2` from 3.12, `_sha256` in 3.11) is built
in and costs nothing to import, but runs at about a sixth of OpenSSL's speed (17 ms against
2.7 ms for 5 MB here). So: `hashlib`'s when something in the process has imported it already
(the CLI and the control plane always have), the built-in one otherwise. Same digest either way.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def _builtin() -> Callable[[bytes], Any]:
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib  # an interpreter without them

    return hashlib.sha256


_BUILTIN = _builtin()


def sha256_hex(data: bytes) -> str:
    hashlib = sys.modules.get("hashlib")
    sha256 = _BUILTIN if hashlib is None else hashlib.sha256
    return str(sha256(data).hexdigest())
