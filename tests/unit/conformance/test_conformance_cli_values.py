"""`smictl conformance --dir ''` and `--report ''` are usage errors, not the working directory:
one read it for scenarios, the other wrote four report files into it."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["conformance", "list", "--dir", ""],
        ["conformance", "run", "--dir", ""],
        ["conformance", "run", "--report", ""],
    ],
)
def test_an_empty_directory_flag_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--scenario", "no-such-scenario"])
    out, err = capsys.readouterr()
    assert (exc.value.code, out) == (2, "")
    flag = argv[-2]
    assert err.splitlines()[-1].endswith(f"argument {flag}: an empty path names no directory")
    assert list(tmp_path.iterdir()) == []


def test_a_report_path_that_is_a_file_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """It read `cannot create the directory: File exists`."""
    a_file = tmp_path / "report"
    a_file.write_text("x")
    code = main(["conformance", "run", "--report", str(a_file), "--scenario", "split/*"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"smictl conformance: --report {a_file}: exists and is not a directory"]
