"""Helpers for the validation tests: YAML text in, (code, path) findings out.

(A plain module with a unique name, imported by the tests of this directory: pytest puts the
directory on sys.path.)"""

from __future__ import annotations

import textwrap

from smi.compiler.checks import validate
from smi.errors import Diagnostic
from smi.loading import load_text


def run_checks(text: str, *, strict: bool = False) -> list[Diagnostic]:
    """Load `text` as one file and run the whole validation path on it."""
    loaded = load_text(textwrap.dedent(text), filename="t.yaml")
    return loaded.diagnostics + validate(loaded.resources, loaded.context, strict=strict)


def findings(diags: list[Diagnostic]) -> list[tuple[str, str]]:
    return [(d.code, d.path) for d in diags]
