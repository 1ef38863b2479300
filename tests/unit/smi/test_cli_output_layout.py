"""What users read on the terminal: an error that is in no file names no file, and the
`smictl version` table keeps its columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main
from smi.errors import Diagnostic


def test_a_diagnostic_without_a_file_has_no_location() -> None:
    assert Diagnostic("SMI7004", "TrafficSplit 'nope' not found").format() == (
        "TrafficSplit 'nope' not found (SMI7004)"
    )
    assert Diagnostic("SMI7009", "bad", path="--x", severity="warning").format() == (
        "warning: --x: bad (SMI7009)"
    )


def test_a_diagnostic_with_a_file_keeps_its_location() -> None:
    assert Diagnostic("SMI2103", "bad", path="spec", file="a.yaml", line=3).format() == (
        "a.yaml:3: spec: bad (SMI2103)"
    )
    assert Diagnostic("SMI1001", "bad", file="a.yaml").format() == "a.yaml: bad (SMI1001)"
    # A line number still says it is one, of an unnamed input.
    assert Diagnostic("SMI1002", "bad", line=2).format() == "<input>:2: bad (SMI1002)"


def test_a_flag_error_names_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    missing = tmp_path / "nonexist"
    assert main(["serve", "--cert", str(missing), "--key", str(missing)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"--cert {missing}: no such file (SMI7003)"


def test_version_columns_line_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert any("TrafficMetricsList" in r for r in rows)
    # Every column starts at the same offset on every row, with at least two spaces before it.
    for column in (1, 2):
        starts = {_column_start(r, column) for r in rows}
        assert len(starts) == 1, rows
    assert all("  v1alpha" in r for r in rows)


def _column_start(row: str, column: int) -> int:
    """Where the `column`th (0-based) field of `row` begins: fields are split by 2+ spaces."""
    offset = len(row) - len(row.lstrip())
    for _ in range(column):
        offset = row.index("  ", offset)
        offset += len(row[offset:]) - len(row[offset:].lstrip())
    return offset
