"""Listen and advertise addresses of both IP families.

The injector cannot know whether a pod is IPv4-only, IPv6-only or dual-stack, so it sets
`--bind '*'`: `::` taking IPv4 too, or 0.0.0.0 where the kernel has no IPv6 at all (booted with
ipv6.disable=1, when creating an IPv6 socket fails). Only sockets are bound here, none listens:
tests/integration/proxy/test_proxy_ipv6.py serves real peers in private network namespaces.
"""

from __future__ import annotations

import argparse
import errno
import socket
from pathlib import Path
from typing import Any

import pytest

from proxy.__main__ import main
from proxy.app import _bound_socket
from proxy.cli import register
from proxy.config import ProxyConfigError, from_args

BASE = [
    *("--identity", "shop/web", "--policy", "https://cp:8443/mesh/v1/policy"),
    *("--ca", "c", "--cert", "c", "--key", "k", "--inbound", "15006:8080"),
]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["proxy", *argv])


def _can_bind(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True


def test_every_address_is_one_socket_of_both_families() -> None:
    if not _can_bind("::"):
        pytest.skip("no IPv6 here")
    sock = _bound_socket("*", 0)
    assert sock is not None
    with sock:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[0] == "::"
        # Explicitly off: where net.ipv6.bindv6only=1, `::` alone would refuse IPv4 peers.
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0


def _without_ipv6(monkeypatch: pytest.MonkeyPatch, error: int) -> list[int]:
    """socket.socket, failing for AF_INET6 as a kernel without IPv6 does; the families made."""
    real, made = socket.socket, []

    def fake(family: int = socket.AF_INET, *args: Any, **kwargs: Any) -> socket.socket:
        made.append(family)
        if family == socket.AF_INET6:
            raise OSError(error, "no IPv6")
        return real(family, *args, **kwargs)

    monkeypatch.setattr(socket, "socket", fake)
    return made


def test_every_address_is_ipv4_where_the_kernel_has_no_ipv6(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without_ipv6(monkeypatch, errno.EAFNOSUPPORT)
    sock = _bound_socket("*", 0)
    assert sock is not None
    with sock:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "0.0.0.0"


def test_every_address_does_not_hide_other_errors_behind_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A taken port (or no permission) is the proxy's error to report, not a cue to listen on
    IPv4 only and leave the pod's IPv6 peers unserved."""
    made = _without_ipv6(monkeypatch, errno.EADDRINUSE)
    with pytest.raises(OSError) as caught:
        _bound_socket("*", 15006)
    assert caught.value.errno == errno.EADDRINUSE
    assert made == [socket.AF_INET6]


def test_ipv6_literals_are_accepted_in_brackets_too(tmp_path: Path) -> None:
    """`[fd00::1]` is how an IPv6 address is written next to a port (URLs, `kubectl`
    output); bind() and connect() take it without the brackets."""
    (tmp_path / "token").write_text("t0k\n")
    cfg = from_args(
        _parse(
            [
                *BASE,
                *("--token-file", str(tmp_path / "token")),
                *("--bind", "[::]", "--admin-bind", "[fd00::5]", "--outbound-bind", "[::1]"),
                *("--app-host", "[::1]", "--advertise-address", "[fd00::5]"),
            ]
        )
    )
    assert (cfg.bind, cfg.admin_bind, cfg.outbound_bind) == ("::", "fd00::5", "::1")
    assert (cfg.app_host, cfg.advertise_address) == ("::1", "fd00::5")


@pytest.mark.parametrize("bind", ["*", "0.0.0.0", "::"])
def test_registering_a_wildcard_bind_needs_an_advertise_address(bind: str, tmp_path: Path) -> None:
    """Peers would be sent to the wildcard: `*` is no address, and 0.0.0.0 or `::` is each
    peer itself."""
    token = tmp_path / "token"
    token.write_text("t0k\n")
    register = [*BASE, "--register", "8080=web", "--token-file", str(token), "--bind", bind]
    with pytest.raises(ProxyConfigError, match="--register when --bind is"):
        from_args(_parse(register))
    cfg = from_args(_parse([*register, "--advertise-address", "fd00::5"]))
    assert cfg.advertise_address == "fd00::5"


def test_a_taken_ipv6_port_is_reported_with_brackets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cannot listen on ::1:15006` reads as three colons and no port; [::1]:15006 does not."""
    if not _can_bind("::1"):
        pytest.skip("::1 cannot be bound here")
    from smi.identity import Identity
    from smi.pki import CertificateAuthority

    ca = CertificateAuthority.create()
    cert, key = ca.issue_workload(Identity("shop", "web"))
    for name, data in (("ca.pem", ca.cert_pem()), ("c.pem", cert), ("k.pem", key)):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "p.json").write_text("{}")
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [
            *("--identity", "shop/web", "--policy", str(tmp_path / "p.json")),
            *("--ca", str(tmp_path / "ca.pem")),
            *("--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")),
            *("--outbound-bind", "::1", "--outbound", str(port)),
        ]
        assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"smictl proxy: cannot listen on [::1]:{port}: ")
