"""Golden tests: the exact text users read. Each case is a `smictl` command run from the repo
root; `golden/<name>.txt` holds the command, what it printed (stdout, then stderr) and its exit
code. A change in wording or order shows up as a diff here. To accept an intended change, run
with SMICTL_UPDATE_GOLDEN=1 and review the diff of the golden files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smi.cli import main

GOLDEN = Path(__file__).parent / "golden"
BROKEN = sorted(p.stem for p in (Path(__file__).parents[3] / "examples" / "broken").glob("*.yaml"))

CASES: dict[str, list[str]] = {
    **{f"validate-{stem}": ["validate", "-f", f"examples/broken/{stem}.yaml"] for stem in BROKEN},
    "validate-broken-json": ["validate", "-f", "examples/broken/ports.yaml", "-o", "json"],
    "validate-mesh": ["validate", "-f", "examples/mesh"],
    "validate-strict": ["validate", "--strict", "-f", "examples/broken/traffictarget.yaml"],
    "convert-legacy-access": [
        "convert", "-f", "examples/legacy/access-v1alpha1.yaml",
        "--to", "access.smi-spec.io/v1alpha3",
    ],
    "convert-legacy-split": [
        "convert", "-f", "examples/legacy/split-v1alpha1.yaml",
        "--to", "split.smi-spec.io/v1alpha4",
    ],
    "convert-wrong-target": [
        "convert", "-f", "examples/legacy/split-v1alpha1.yaml", "--to", "split.smi-spec.io/v9",
    ],
    "explain-code-SMI2103": ["explain-code", "SMI2103"],
    "explain-code-SMI2005": ["explain-code", "smi2005"],
}  # fmt: skip


def render(argv: list[str], code: int, out: str, err: str) -> str:
    return f"$ smictl {' '.join(argv)}\n{out}{err}exit {code}\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(
    name: str, repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo_root)
    argv = CASES[name]
    code = main(argv)
    captured = capsys.readouterr()
    text = render(argv, code, captured.out, captured.err)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("SMICTL_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with SMICTL_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_every_golden_file_belongs_to_a_case() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(CASES)
