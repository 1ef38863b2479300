"""`smictl proxy`'s numeric flags and their SMI_PROXY_* variables: a bad one is the proxy's
one-line configuration error (exit 2), never a traceback, and never breaks another command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.__main__ import main as proxy_main
from proxy.cli import register
from proxy.config import from_args
from smi.cli import main

ARGV = ["--identity", "shop/web", "--inbound", "1:2", "--policy", "x.json", "--ca", "x"]
# Every numeric option, with what a bad value of it is said not to be.
NUMBERS = {
    "--max-header-bytes": "a positive whole number",
    "--max-headers": "a positive whole number",
    "--header-timeout": "a positive number of seconds",
    "--body-timeout": "a positive number of seconds",
    "--idle-timeout": "a positive number of seconds",
    "--response-timeout": "a positive number of seconds",
    "--connect-timeout": "a positive number of seconds",
    "--drain-timeout": "zero or a positive number of seconds",
    "--watch-interval": "a positive number of seconds",
    "--access-log-sample": "a fraction from 0 to 1",
}
NONSENSE = {
    "a positive whole number": ["abc", "0", "-1", "1.5", "nan", ""],
    "a positive number of seconds": ["abc", "0", "-0.5", "nan", "inf", "-inf"],
    "a fraction from 0 to 1": ["abc", "-0.1", "1.5", "nan", "inf"],
    "zero or a positive number of seconds": ["abc", "-0.5", "nan", "inf", "-inf"],
}


def _variable(option: str) -> str:
    return "SMI_PROXY_" + option.removeprefix("--").upper().replace("-", "_")


def _cases() -> list[tuple[str, str, str]]:
    return [(o, v, what) for o, what in NUMBERS.items() for v in NONSENSE[what]]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["proxy", *argv])


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("option", "value", "what"), [c for c in _cases() if c[1]])
def test_a_bad_variable_is_one_line_naming_the_flag(
    option: str,
    value: str,
    what: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    variable = _variable(option)
    monkeypatch.setenv(variable, value)
    assert main(["proxy", *ARGV]) == 2
    assert _err(capsys) == [f"smictl proxy: {option}: {variable}={value!r} is not {what} (SMI7101)"]


@pytest.mark.parametrize(("option", "value", "what"), _cases())
def test_a_bad_flag_is_one_line_too(
    option: str, value: str, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["proxy", *ARGV, f"{option}={value}"]) == 2
    assert _err(capsys) == [f"smictl proxy: {option}: {value!r} is not {what} (SMI7101)"]


def test_a_bad_variable_leaves_the_other_commands_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for option in NUMBERS:
        monkeypatch.setenv(_variable(option), "abc")
    assert main(["version"]) == 0
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0
    assert "proxy" in capsys.readouterr().out
    with pytest.raises(SystemExit) as proxy_help:
        main(["proxy", "--help"])
    assert proxy_help.value.code == 0


def test_a_flag_wins_over_a_bad_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMI_PROXY_MAX_HEADERS", "abc")
    assert main(["proxy", *ARGV, "--max-headers", "50"]) == 2
    # Past the numbers: the next problem of this command line is its missing certificate.
    assert _err(capsys) == ["smictl proxy: --cert: give --cert and --key, or --csr-url (SMI7101)"]


def test_good_values_from_flags_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMI_PROXY_ACCESS_LOG_SAMPLE", "0")
    monkeypatch.setenv("SMI_PROXY_MAX_HEADERS", " 7 ")
    monkeypatch.setenv("SMI_PROXY_CONNECT_TIMEOUT", "")  # empty is unset, as for other flags
    monkeypatch.setenv("SMI_PROXY_DRAIN_TIMEOUT", "0")  # stop at once on SIGTERM: allowed
    args = _parse([*ARGV, "--cert", "c", "--key", "k", "--idle-timeout", "0.25"])
    cfg = from_args(args)
    assert cfg.drain_timeout == 0.0
    assert cfg.access_log_sample == 0.0 and cfg.limits.max_headers == 7
    assert cfg.limits.idle_timeout == 0.25 and cfg.connect_timeout == 1.0
    assert cfg.limits.max_header_bytes == 32768


def test_python_m_proxy_reports_it_the_same_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMI_PROXY_IDLE_TIMEOUT", "-5")
    assert proxy_main(ARGV) == 2
    assert _err(capsys) == [
        "smictl proxy: --idle-timeout: SMI_PROXY_IDLE_TIMEOUT='-5' is not "
        "a positive number of seconds (SMI7101)"
    ]


@pytest.mark.parametrize("argv", [["-m", "smi.cli", "--help"], ["-m", "proxy", *ARGV]])
def test_no_traceback_in_a_real_process(argv: list[str], repo_root: Path) -> None:
    env = {**os.environ, "SMI_PROXY_MAX_HEADERS": "abc"}
    out = subprocess.run(
        [sys.executable, *argv],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=repo_root,
        timeout=60,
    )
    assert "Traceback" not in out.stderr
    if "proxy" in argv:
        assert out.returncode == 2
        assert out.stderr.splitlines() == [
            "smictl proxy: --max-headers: SMI_PROXY_MAX_HEADERS='abc' is not "
            "a positive whole number (SMI7101)"
        ]
    else:
        assert out.returncode == 0 and "proxy" in out.stdout
