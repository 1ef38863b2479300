"""`python -m conformance` is `smictl conformance`: a flag mistake is one line on standard
error naming the (sub)command whose help answers it, exit 2 — not argparse's usage block above
a line that named `python -m conformance`, or `python -m conformance conformance run`, a
command that does not run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance.__main__ import main
from smi.cli import main as smictl

MISTAKES = [
    (["run", "--bogus"], "smictl conformance run: error: unrecognized arguments: --bogus"),
    (["list", "--x", "y"], "smictl conformance list: error: unrecognized arguments: --x y"),
    (
        ["run", "--target"],
        "smictl conformance run: error: argument --target: expected one argument",
    ),
    (
        ["bogus"],
        "smictl conformance: error: argument {run,list}: invalid choice: 'bogus' "
        "(choose from 'run', 'list')",
    ),
]


def _exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


@pytest.mark.parametrize(("argv", "line"), MISTAKES)
def test_a_flag_mistake_is_one_line_with_where_to_look(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _exit(argv, capsys)
    command = line.partition(": error:")[0]
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"{line} (see `{command} --help`)"]


@pytest.mark.parametrize(("argv", "line"), MISTAKES)
def test_it_is_the_line_smictl_conformance_prints(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, ours = _exit(argv, capsys)
    with pytest.raises(SystemExit):
        smictl(["conformance", *argv])
    assert capsys.readouterr().err == ours


def test_a_refused_value_says_what_the_flag_expects(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _exit(["run", "--dir", ""], capsys)
    assert code == 2
    assert err.splitlines() == [
        "smictl conformance run: error: argument --dir: an empty path names no directory"
    ]


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["list", "--help"]])
def test_help_is_smictl_conformance_help(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, ours, err = _exit(argv, capsys)
    assert (code, err) == (0, "")
    assert ours.startswith(f"usage: smictl conformance {' '.join(argv[:-1])}".rstrip() + " [-h]")
    with pytest.raises(SystemExit):
        smictl(["conformance", *argv])
    assert capsys.readouterr().out == ours


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: smictl conformance [-h] {run,list} ...")


def test_a_real_python_m_conformance_process_prints_one_line(repo_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--bogus"],
        check=False,
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=60,
    )
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.splitlines() == [
        "smictl conformance run: error: unrecognized arguments: --bogus "
        "(see `smictl conformance run --help`)"
    ]
