"""`smictl proxy --help` says what every flag does: `--admin-bind`, `--control-plane-ca-pem`,
the head limits and `--access-log-sample` were listed with a metavar and nothing else."""

from __future__ import annotations

import argparse

import pytest

from smi.cli import build_parser, main


def test_every_proxy_flag_has_help() -> None:
    sub = next(
        a for a in build_parser("proxy")._actions if isinstance(a, argparse._SubParsersAction)
    )
    proxy = sub.choices["proxy"]
    assert [a.option_strings for a in proxy._actions if not a.help] == []


def test_the_limits_name_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["proxy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "else 431 (default 32768)" in text and "else 431 (default 100)" in text
    assert "0 to 1 (default 1: every one)" in text
