"""`python -m proxy` reports a flag mistake as `smictl proxy` does: one line on standard error
naming `smictl proxy`, exit 2, and not argparse's usage block above it (twenty lines of the
proxy's flags, in a pod's log). Its help and its own value errors stay as they were."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.__main__ import main
from smi.cli import main as smictl

HINT = " (see `smictl proxy --help`)"
MISTAKES = [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["stray"], "unrecognized arguments: stray"),
    (["--inbound"], "argument --inbound: expected one argument"),
    (
        ["--log-level", "loud"],
        "argument --log-level: invalid choice: 'loud' "
        "(choose from 'debug', 'info', 'warning', 'error')",
    ),
    (["--identity", "a\nb", "--nope"], "unrecognized arguments: --nope"),
]


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


@pytest.mark.parametrize(("argv", "message"), MISTAKES)
def test_a_flag_mistake_is_one_line_naming_smictl_proxy(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _usage_error(argv, capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"smictl proxy: error: {message}{HINT}"]


@pytest.mark.parametrize(("argv", "message"), MISTAKES)
def test_it_is_the_line_smictl_proxy_prints(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, ours = _usage_error(argv, capsys)
    with pytest.raises(SystemExit):
        smictl(["proxy", *argv])
    assert capsys.readouterr().err == ours


def test_help_is_still_the_whole_of_smictl_proxy_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, ours, err = _usage_error(["--help"], capsys)
    assert (code, err) == (0, "")
    assert ours.startswith("usage: smictl proxy [-h] [--identity IDENTITY]")
    assert "\n  --max-header-bytes BYTES" in ours and "\n  --drain-timeout SECONDS" in ours
    with pytest.raises(SystemExit):
        smictl(["proxy", "--help"])
    assert capsys.readouterr().out == ours


def test_the_proxys_own_value_errors_are_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--identity", "shop/web", "--inbound", "8080", "--policy", "p.json", "--ca", "x"]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        "smictl proxy: --inbound: '8080' is not PORT:APP_PORT (SMI7101)"
    ]


def test_a_real_python_m_proxy_process_prints_one_line(repo_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proxy", "--bogus"],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "SMICTL_PURE_PYTHON": "1"},
        cwd=repo_root,
        timeout=60,
    )
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.splitlines() == [
        f"smictl proxy: error: unrecognized arguments: --bogus{HINT}"
    ]
