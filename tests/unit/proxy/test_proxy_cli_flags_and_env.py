"""`smictl proxy`'s repeatable flags, its log level, and its ports, from flags and SMI_PROXY_*
variables (found by a black-box audit):

- a repeatable flag given replaces its variable ("flags win"): argparse appended the flag's
  values to the variable's, so a stale SMI_PROXY_INBOUND opened a listener beside the flag's;
- a bad SMI_PROXY_LOG_LEVEL is the one-line configuration error (it was an internal error);
- two `--inbound` of one listen port, or of one app port, and an app port of 0 are refused
  (the first failed as "address already in use", the second bound both and reported one);
- a bad --trust-domain is named as such (it was blamed on --identity)."""

from __future__ import annotations

import argparse

import pytest

from proxy.cli import register
from proxy.config import InboundPort, OutboundTcpPort, from_args
from smi.cli import main

ARGV = ["--identity", "shop/web", "--policy", "x.json", "--ca", "x", "--cert", "c", "--key", "k"]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["proxy", *argv])


def test_a_flag_replaces_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMI_PROXY_INBOUND", "0:8080")
    monkeypatch.setenv("SMI_PROXY_OUTBOUND_TCP", "0:shop/db")
    cfg = from_args(_parse([*ARGV, "--inbound", "0:9090", "--outbound-tcp", "0:shop/cache"]))
    assert cfg.inbound == (InboundPort(0, 9090),)
    assert cfg.outbound_tcp == (OutboundTcpPort(0, "shop/cache"),)


def test_a_variable_alone_still_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMI_PROXY_INBOUND", "0:8080, 0:9090")
    monkeypatch.setenv("SMI_PROXY_OUTBOUND_TCP", "0:shop/db")
    cfg = from_args(_parse(ARGV))
    assert cfg.inbound == (InboundPort(0, 8080), InboundPort(0, 9090))
    assert cfg.outbound_tcp == (OutboundTcpPort(0, "shop/db"),)


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_a_bad_log_level_variable_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMI_PROXY_LOG_LEVEL", "verbose")
    assert main(["proxy", *ARGV, "--inbound", "0:9090"]) == 2
    assert _err(capsys) == [
        "smictl proxy: --log-level: SMI_PROXY_LOG_LEVEL='verbose' is not one of debug, info, "
        "warning, error (SMI7101)"
    ]


@pytest.mark.parametrize(
    ("inbound", "message"),
    [
        (["15098:8080", "15098:9090"], "--inbound: listen port 15098 is given twice"),
        (["15096:8080", "15097:8080"], "--inbound: app port 8080 is given twice"),
        (["0:0"], "--inbound: '0:0': the app's port is 1-65535"),
    ],
)
def test_inbound_ports_given_twice_or_zero_are_refused(
    capsys: pytest.CaptureFixture[str], inbound: list[str], message: str
) -> None:
    flags = [x for port in inbound for x in ("--inbound", port)]
    assert main(["proxy", *ARGV, *flags]) == 2
    assert _err(capsys) == [f"smictl proxy: {message} (SMI7101)"]


def test_two_listeners_asking_the_kernel_for_ports_are_fine() -> None:
    cfg = from_args(_parse([*ARGV, "--inbound", "0:8080", "--inbound", "0:9090"]))
    assert [i.app_port for i in cfg.inbound] == [8080, 9090]


def test_a_bad_trust_domain_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", *ARGV, "--inbound", "0:9090", "--trust-domain", "Bad Domain"]) == 2
    assert _err(capsys) == [
        "smictl proxy: --trust-domain: invalid trust domain 'Bad Domain' (SMI7101)"
    ]


@pytest.mark.parametrize(
    ("outbound_tcp", "message"),
    [
        (["0:shop/db", "0:shop/db"], "--outbound-tcp: service shop/db is given twice"),
        (["5000:shop/db", "5000:shop/cache"], "--outbound-tcp: listen port 5000 is given twice"),
        (["0:shop/db:5432"], "--outbound-tcp: '0:shop/db:5432': 'shop/db:5432' is not "
         "NAMESPACE/SERVICE (DNS labels)"),
        (["0:shop/db/extra"], "--outbound-tcp: '0:shop/db/extra': 'shop/db/extra' is not "
         "NAMESPACE/SERVICE (DNS labels)"),
    ],
)  # fmt: skip
def test_outbound_tcp_twice_or_to_no_service_is_refused(
    capsys: pytest.CaptureFixture[str], outbound_tcp: list[str], message: str
) -> None:
    """Two of one service bound two listeners and reported one (they are keyed by service);
    `shop/db:5432` became a listener for a Service nobody can have."""
    flags = [x for value in outbound_tcp for x in ("--outbound-tcp", value)]
    assert main(["proxy", *ARGV, *flags]) == 2
    assert _err(capsys) == [f"smictl proxy: {message} (SMI7101)"]
