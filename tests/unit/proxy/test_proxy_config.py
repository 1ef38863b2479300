"""`smictl proxy` flags and SMI_PROXY_* variables become one ProxyConfig, or one clear error."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from proxy.__main__ import main
from proxy.cli import register
from proxy.config import InboundPort, OutboundTcpPort, ProxyConfigError, from_args

BASE = [
    "--identity",
    "shop/web",
    "--policy",
    "p.json",
    "--ca",
    "ca.pem",
    "--cert",
    "c",
    "--key",
    "k",
]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["proxy", *argv])


def test_flags_build_the_config() -> None:
    cfg = from_args(
        _parse(
            [
                *BASE,
                "--inbound",
                "15006:8080",
                "--inbound",
                "15007:9090,15008:5432",
                "--outbound",
                "15001",
                "--outbound-tcp",
                "15010:shop/db",
                "--admin",
                "15090",
                "--header-timeout",
                "2.5",
                "--max-header-bytes",
                "4096",
            ]
        )
    )
    assert cfg.identity.spiffe_id == "spiffe://cluster.local/ns/shop/sa/web"
    assert cfg.inbound == (
        InboundPort(15006, 8080),
        InboundPort(15007, 9090),
        InboundPort(15008, 5432),
    )
    assert cfg.outbound == 15001 and cfg.admin == 15090
    assert cfg.outbound_tcp == (OutboundTcpPort(15010, "shop/db"),)
    assert cfg.limits.header_timeout == 2.5 and cfg.limits.max_header_bytes == 4096
    assert not cfg.policy_is_url and cfg.ca == "ca.pem"


def test_environment_variables_are_defaults_and_flags_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("t0k\n")
    monkeypatch.setenv("SMI_PROXY_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("SMI_PROXY_IDENTITY", "spiffe://corp.example/ns/a/sa/b")
    monkeypatch.setenv("SMI_PROXY_INBOUND", "1:2,3:4")
    monkeypatch.setenv("SMI_PROXY_POLICY", "https://cp:8443/mesh/v1/policy")
    monkeypatch.setenv("SMI_PROXY_CA", "ca.pem")
    monkeypatch.setenv("SMI_PROXY_CSR_URL", "https://cp:8443/mesh/v1/certificates")
    monkeypatch.setenv("SMI_PROXY_IDLE_TIMEOUT", "7")
    cfg = from_args(_parse(["--admin", "9"]))
    assert cfg.identity.trust_domain == "corp.example"
    assert cfg.inbound == (InboundPort(1, 2), InboundPort(3, 4))
    assert cfg.policy_is_url and cfg.csr_url is not None and cfg.cert is None
    assert cfg.limits.idle_timeout == 7.0 and cfg.admin == 9


def test_a_proxy_fed_by_a_control_plane_takes_its_certificate_there_by_default(
    tmp_path: Path,
) -> None:
    (tmp_path / "token").write_text("t0k\n")
    token = ["--token-file", str(tmp_path / "token")]
    cfg = from_args(
        _parse(
            [
                *BASE[:-4],
                "--policy",
                "https://cp.example:8443/mesh/v1/policy",
                "--outbound",
                "1",
                *token,
            ]
        )
    )
    assert cfg.csr_url == "https://cp.example:8443/mesh/v1/certificates"
    explicit = from_args(
        _parse([*BASE[:-4], "--policy", "https://a:1/p", "--control-plane", "https://b:2/",
                "--outbound", "1", *token])
    )  # fmt: skip
    assert explicit.csr_url == "https://b:2/mesh/v1/certificates"


@pytest.mark.parametrize(
    ("argv", "option", "message"),
    [
        (
            ["--policy", "p", "--ca", "c", "--cert", "c", "--key", "k", "--outbound", "1"],
            "--identity",
            "required (or set SMI_PROXY_IDENTITY)",
        ),
        ([*BASE[:-4], "--outbound", "1"], "--cert", "give --cert and --key, or --csr-url"),
        ([*BASE], "--inbound", "give at least one"),
        ([*BASE, "--inbound", "8080"], "--inbound", "'8080' is not PORT:APP_PORT"),
        ([*BASE, "--inbound", "1:99999"], "--inbound", "is not a port number"),
        ([*BASE, "--outbound-tcp", "1:db"], "--outbound-tcp", "PORT:NAMESPACE/SERVICE"),
        (
            ["--identity", "Not An Identity", *BASE[2:], "--outbound", "1"],
            "--identity",
            "is not an identity",
        ),
        # Control-plane URLs are checked at start-up, not at the first call.
        ([*BASE, "--outbound", "1", "--policy", "https://cp:99999/p"], "--policy", "not an http"),
        ([*BASE, "--outbound", "1", "--policy", "https://u:pw@cp/p"], "--policy", "credentials"),
        ([*BASE, "--outbound", "1", "--policy", "https://cp/p#x"], "--policy", "fragment"),
        ([*BASE, "--outbound", "1", "--csr-url", "ftp://cp/c"], "--csr-url", "not an http"),
        ([*BASE, "--outbound", "1", "--control-plane", "https://cp:0"], "--control-plane", "0"),
        ([*BASE, "--outbound", "1", "--control-plane", "https://cé/"], "--control-plane", "ASCII"),
    ],
)
def test_bad_configuration_names_the_flag(argv: list[str], option: str, message: str) -> None:
    with pytest.raises(ProxyConfigError) as info:
        from_args(_parse(argv))
    assert info.value.option == option and message in info.value.message


def test_cli_reports_a_config_error_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--inbound", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["smictl proxy: --inbound: 'nope' is not PORT:APP_PORT (SMI7101)"]


def test_cli_reports_an_unreadable_ca_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.pem")
    argv = [
        "--identity",
        "a/b",
        "--policy",
        "p",
        "--ca",
        missing,
        "--cert",
        "c",
        "--key",
        "k",
        "--outbound",
        "0",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("smictl proxy: --ca ") and err[-1].endswith("(SMI7102)")


def test_cli_reports_a_taken_port_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from smi.identity import Identity
    from smi.pki import CertificateAuthority

    ca = CertificateAuthority.create()
    cert, key = ca.issue_workload(Identity("shop", "web"))
    for name, data in (("ca.pem", ca.cert_pem()), ("c.pem", cert), ("k.pem", key)):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "p.json").write_text("{}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [
            *("--identity", "shop/web", "--policy", str(tmp_path / "p.json")),
            *("--ca", str(tmp_path / "ca.pem")),
            *("--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")),
            *("--bind", "127.0.0.1", "--outbound", str(port), "--admin", "0"),
        ]
        assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"smictl proxy: cannot listen on 127.0.0.1:{port}: ")
    assert err[-1].endswith("(SMI7102)")


def test_registration_needs_an_inbound_port_a_control_plane_and_a_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0k\n")
    url = [
        "--identity",
        "shop/web",
        "--policy",
        "https://cp:8443/mesh/v1/policy",
        "--ca",
        "c",
        "--cert",
        "c",
        "--key",
        "k",
        "--inbound",
        "15006:8080",
    ]
    cfg = from_args(_parse([*url, "--register", "8080=web,web-v2", "--token-file", str(token)]))
    assert cfg.register == ((8080, ("web", "web-v2")),)
    assert cfg.control_plane_url == "https://cp:8443" and cfg.token == "t0k"
    with pytest.raises(ProxyConfigError, match="9090 is not the APP_PORT"):
        from_args(_parse([*url, "--register", "9090=web", "--token-file", str(token)]))
    # A --policy URL needs the token already (the control plane serves the policy only to a
    # workload that proves who it is); so does registering, with the policy from a file.
    with pytest.raises(ProxyConfigError, match="needed with a --policy URL"):
        from_args(_parse([*url, "--register", "8080=web"]))
    with pytest.raises(ProxyConfigError, match="needs --token-file"):
        from_args(
            _parse(
                [*BASE, "--inbound", "15006:8080", "--control-plane", "https://cp:8443",
                 "--register", "8080=web"]
            )
        )  # fmt: skip
    with pytest.raises(ProxyConfigError, match="needs the control plane"):
        from_args(
            _parse(
                [*BASE, "--inbound", "1:8080", "--register", "8080=web", "--token-file", str(token)]
            )
        )
    # The control plane registers IP literals only: a name is refused at start, not at every
    # registration (a 400 each time).
    reg = [*url, "--register", "8080=web", "--token-file", str(token)]
    with pytest.raises(ProxyConfigError, match=r"'web\.shop' is not an IP address"):
        from_args(_parse([*reg, "--advertise-address", "web.shop"]))
    with pytest.raises(ProxyConfigError, match="--bind: 'localhost' is not an IP address"):
        from_args(_parse([*reg, "--bind", "localhost"]))
    assert from_args(_parse([*reg, "--advertise-address", "[fd00::7]"])).advertise_address == (
        "fd00::7"
    )


def test_the_mesh_ca_can_be_given_inline_as_the_injector_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from proxy.app import Proxy
    from smi.pki import CertificateAuthority

    ca = CertificateAuthority.create()
    monkeypatch.setenv("SMI_PROXY_CA_PEM", ca.cert_pem().decode())
    argv = [
        "--identity",
        "shop/web",
        "--policy",
        str(tmp_path / "p.json"),
        "--cert",
        "c",
        "--key",
        "k",
        "--outbound",
        "0",
    ]
    cfg = from_args(_parse(argv))
    assert cfg.ca is None and cfg.ca_pem is not None
    proxy = Proxy(cfg)
    try:
        from cryptography.hazmat.primitives.serialization import Encoding

        # the listeners trust exactly that CA
        trusted = proxy.tls.server.get_ca_certs(binary_form=True)
        assert trusted == [ca.cert.public_bytes(Encoding.DER)]
    finally:
        proxy.tls.cleanup()
    monkeypatch.delenv("SMI_PROXY_CA_PEM")
    with pytest.raises(ProxyConfigError, match="SMI_PROXY_CA_PEM"):
        from_args(_parse(argv))


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--control-plane-ca", "{tmp}/none.pem", "--control-plane-ca {tmp}/none.pem: No such file"),
        ("--control-plane-ca-pem", "not a PEM", "control plane CA: cannot read certificate"),
    ],
)
def test_cli_reports_an_unusable_control_plane_ca_in_one_line(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from smi.pki import CertificateAuthority

    ca = tmp_path / "ca.pem"
    ca.write_bytes(CertificateAuthority.create().cert_pem())
    argv = ["--identity", "a/b", "--policy", "p", "--ca", str(ca), "--cert", "c", "--key", "k"]
    argv += ["--outbound", "0", flag, value.format(tmp=tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(tmp=tmp_path) in err[0] and "(SMI7102)" in err[0]


def test_the_control_plane_ca_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMI_PROXY_CONTROL_PLANE_CA_PEM", "-----BEGIN CERTIFICATE-----")
    cfg = from_args(_parse([*BASE, "--outbound", "1"]))
    assert cfg.control_plane_ca_pem == "-----BEGIN CERTIFICATE-----"
    assert cfg.control_plane_ca is None


def test_a_policy_url_needs_the_workloads_token(tmp_path: Path) -> None:
    """The control plane serves the policy only to a workload that proves who it is: without
    a token the proxy would start, never turn ready and log a 401 at every poll."""
    argv = [*BASE[:-4], "--policy", "https://cp:8443/mesh/v1/policy", "--inbound", "1:2"]
    with pytest.raises(ProxyConfigError) as refused:
        from_args(_parse([*argv, "--cert", "c", "--key", "k"]))
    assert str(refused.value).startswith("--token-file: needed with a --policy URL")
    (tmp_path / "token").write_text("smi1.a.b\n")
    cfg = from_args(_parse([*argv, "--token-file", str(tmp_path / "token")]))
    assert cfg.token == "smi1.a.b" and cfg.policy_is_url
    # A policy file needs none.
    assert from_args(_parse([*BASE, "--inbound", "1:2"])).token == ""


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    (tmp_path / "token").write_text("smi1.abc.def\n")
    return str(tmp_path / "token")


CP = "https://cp:8443/mesh/v1/policy"
FILES = ["--identity", "shop/web", "--ca", "c", "--inbound", "1:8080"]


@pytest.mark.parametrize(
    ("argv", "option", "message"),
    [
        # every poll
        (
            ["--policy", "http://cp:8443/mesh/v1/policy", "--cert", "c", "--key", "k"],
            "--policy",
            "http://cp:8443/mesh/v1/policy would send the workload's token in clear; use https",
        ),
        # and the CSR URL derived from it: the --policy flag is named once
        (
            ["--policy", "http://cp:8443/mesh/v1/policy"],
            "--policy",
            "http://cp:8443/mesh/v1/policy would send the workload's token in clear; use https",
        ),
        # every CSR
        (
            ["--policy", CP, "--csr-url", "http://cp:8443/mesh/v1/certificates"],
            "--csr-url",
            "http://cp:8443/mesh/v1/certificates would send the workload's token in clear; use",
        ),
        (
            ["--policy", "p.json", "--csr-url", "HTTP://cp/mesh/v1/certificates"],
            "--csr-url",
            "HTTP://cp/mesh/v1/certificates would send the workload's token in clear; use https",
        ),
        # a CSR URL derived from --control-plane names that flag, and says where the token goes
        (
            ["--policy", CP, "--control-plane", "http://cp:8080/"],
            "--control-plane",
            "http://cp:8080/ would send the workload's token in clear "
            "(to http://cp:8080/mesh/v1/certificates); use https",
        ),
        # every registration
        (
            ["--policy", "p.json", "--cert", "c", "--key", "k", "--control-plane", "http://cp",
             "--register", "8080=web"],
            "--control-plane",
            "http://cp would send the workload's token in clear (to http://cp/mesh/v1/endpoints)",
        ),
    ],
)  # fmt: skip
def test_a_url_the_token_goes_to_must_be_https(
    argv: list[str], option: str, message: str, token_file: str
) -> None:
    """The token gets certificates for this identity and reads the whole mesh policy: sent
    over http it is anyone's on the path."""
    with pytest.raises(ProxyConfigError) as refused:
        from_args(_parse([*FILES, *argv, "--token-file", token_file]))
    assert refused.value.option == option and message in refused.value.message


def test_the_cli_refuses_a_token_in_clear_in_one_line(
    token_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*FILES, "--policy", "http://cp:8443/mesh/v1/policy", "--token-file", token_file]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "smictl proxy: --policy: http://cp:8443/mesh/v1/policy would send the workload's token "
        "in clear; use https (SMI7101)"
    ]


def test_urls_that_get_no_token_may_stay_http(token_file: str) -> None:
    # Certificates from files: the --control-plane is only the CSR URL's default, unused.
    cfg = from_args(
        _parse([*FILES, "--policy", CP, "--cert", "c", "--key", "k",
                "--control-plane", "http://cp:8080", "--token-file", token_file])
    )  # fmt: skip
    assert cfg.token == "smi1.abc.def" and cfg.control_plane == "http://cp:8080"
    # No token at all: refused at start, whatever the scheme (every CSR would be a 401).
    with pytest.raises(ProxyConfigError, match="needed with --csr-url"):
        from_args(_parse([*FILES, "--policy", "p.json", "--csr-url", "http://cp/c"]))
    with pytest.raises(ProxyConfigError, match="needed with --control-plane"):
        from_args(_parse([*FILES, "--policy", "p.json", "--control-plane", "https://cp"]))
    # And a proxy with a policy file and certificate files, and no token, as ever.
    assert from_args(_parse([*BASE, "--inbound", "1:2"])).token == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"tok\r\nX-Injected: 1", "byte 0x0d at offset 3 of the token: a token is one word"),
        (b"two words\n", "byte 0x20 at offset 3 of the token"),
        ("t\u00f6k".encode(), "byte 0xc3 at offset 1 of the token"),
        (b"\xff\xfe", "byte 0xff at offset 0 of the token"),
        (b"\n", "empty"),
    ],
)
def test_a_token_file_that_holds_no_token_is_refused_at_start(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its text would go into an `Authorization` header: a line break in it would end the
    header and add another. Refused before anything is sent, and never echoed."""
    path = tmp_path / "token"
    path.write_bytes(content)
    argv = [*FILES, "--policy", CP, "--token-file", str(path)]
    with pytest.raises(ProxyConfigError) as refused:
        from_args(_parse(argv))
    assert refused.value.option == "--token-file"
    assert refused.value.message.startswith(f"{path}: ") and message in refused.value.message
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"smictl proxy: --token-file: {path}: ")
    assert "X-Injected" not in err[0] and err[0].endswith("(SMI7101)")


def test_an_upper_case_https_control_plane_is_verified_with_its_ca(tmp_path: Path) -> None:
    """`HTTPS://` is https (RFC 3986 §3.1: the scheme is case-insensitive): the poll and the
    CSR must be verified against the control plane's CA, not the system's, which would refuse
    the mesh-CA-signed server (or trust a public one in its place)."""
    from proxy.app import Proxy
    from proxy.policy import ControlPlaneSource
    from proxy.tls import CsrCertificates
    from smi.pki import CertificateAuthority

    ca = CertificateAuthority.create()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "token").write_text("t0k\n")
    argv = ["--identity", "shop/web", "--policy", "HTTPS://cp.example:8443/mesh/v1/policy",
            "--ca", str(tmp_path / "ca.pem"), "--token-file", str(tmp_path / "token"),
            "--outbound", "0"]  # fmt: skip
    proxy = Proxy(from_args(_parse(argv)))
    try:
        assert isinstance(proxy.policy_source, ControlPlaneSource)
        assert isinstance(proxy.certs, CsrCertificates)
        expected = proxy.tls.control_plane_context()
        assert proxy.policy_source.ssl_context is expected
        assert proxy.certs.ssl_context is expected
    finally:
        proxy.tls.cleanup()


def test_the_policy_holder_knows_the_proxys_trust_domain(tmp_path: Path) -> None:
    """Without it, a policy of another trust domain (every request `no-traffic-target`) is
    installed with nothing said (PolicyHolder's warning needs the proxy's own)."""
    from proxy.app import Proxy
    from smi.pki import CertificateAuthority

    ca = CertificateAuthority.create()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "token").write_text("t0k\n")
    argv = ["--identity", "shop/web", "--trust-domain", "example.org",
            "--policy", "https://cp.example:8443/mesh/v1/policy",
            "--ca", str(tmp_path / "ca.pem"), "--token-file", str(tmp_path / "token"),
            "--outbound", "0"]  # fmt: skip
    proxy = Proxy(from_args(_parse(argv)))
    try:
        assert proxy.holder.trust_domain == "example.org"
    finally:
        proxy.tls.cleanup()


def test_a_token_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: at start, or on the event loop
    at every poll. It is refused at once, as the policy source refuses one."""
    import os

    from proxy.token import BearerToken

    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    argv = [*BASE, "--outbound", "0", "--token-file", str(fifo)]
    with pytest.raises(ProxyConfigError, match="not a regular file"):
        from_args(_parse(argv))
    assert BearerToken(str(fifo), "last-good")() == "last-good"
