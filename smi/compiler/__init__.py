"""Hub resources -> MeshPolicy, and the cross-resource checks.

`smi.compiler.ir` (the MeshPolicy types, the per-revision index and the pure decision functions
`authorize` and `pick_backend`) is the only part the proxy may import, so this package's
`__init__` stays light: `compile` and `validate` are loaded on first use.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "compile":
        from smi.compiler.build import compile as compile_

        return compile_
    if name == "validate":
        from smi.compiler.checks import validate

        return validate
    raise AttributeError(name)
