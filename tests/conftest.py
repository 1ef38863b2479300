"""Fixtures every test package may use: where the shared SMI material lives."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SMI_EXAMPLES = SHARED / "smi" / "examples"
SMI_CRDS = SHARED / "smi" / "crds"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smi_examples() -> Path:
    if not SMI_EXAMPLES.is_dir():
        pytest.fail(f"the SMI examples are expected at {SMI_EXAMPLES} (../shared beside the repo)")
    return SMI_EXAMPLES
