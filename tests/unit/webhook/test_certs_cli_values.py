"""`smictl certs`, `serve`'s preflight, SMI_WEBHOOK_* and the store CLI on values they cannot
use: one line naming the flag (or variable) and a code, never exit 70, nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from smi.cli import main
from smi.errors import SMIError
from smi.pki import CertificateAuthority, load_certificate
from webhook.settings import Settings

Capsys = pytest.CaptureFixture[str]


def run(capsys: Capsys, *argv: str) -> tuple[int, str, list[str]]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


@pytest.fixture
def ca_dir(tmp_path: Path, capsys: Capsys) -> Path:
    d = tmp_path / "ca"
    assert main(["certs", "init", "--dir", str(d)]) == 0
    capsys.readouterr()
    return d


# --- certs issue --days / certs token --ttl-hours ------------------------------------------------


@pytest.mark.parametrize("days", ["0", "-5", str(10**30), "36501", "nan", "1.5", ""])
def test_days_out_of_range_is_a_usage_error(
    capsys: Capsys, ca_dir: Path, tmp_path: Path, days: str
) -> None:
    """`0` wrote a certificate that had already expired (exit 0), `-5` and 10**30 were
    internal errors (exit 70)."""
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys, "certs", "issue", "--dir", str(ca_dir), "--out", str(out_dir), f"--days={days}"
    )
    assert (code, out) == (2, "")
    assert "argument --days: expected a whole number of days from 1 to 36500" in err[-1]
    assert err[-1].endswith("(SMI7003)")
    assert not out_dir.exists()


def test_days_in_range_still_issue(capsys: Capsys, ca_dir: Path) -> None:
    code, _, err = run(capsys, "certs", "issue", "--dir", str(ca_dir), "--days", "1")
    assert code == 0 and err == []
    cert = load_certificate((ca_dir / "server.crt").read_bytes())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life.days == 1  # a day and the five minutes of back-dating


def test_days_past_the_ca_say_where_the_certificate_ends(capsys: Capsys, ca_dir: Path) -> None:
    """The certificate ends with the CA: asking for more is not refused, but said."""
    code, _, err = run(capsys, "certs", "issue", "--dir", str(ca_dir), "--days", "1000")
    assert code == 0 and len(err) == 1
    assert "the certificate ends with the mesh CA at" in err[0] and "1000 days" in err[0]


@pytest.mark.parametrize("hours", ["-1", "0", "0.0001", "nan", "inf", "-inf", "1e30", "8761", ""])
def test_ttl_hours_out_of_range_is_a_usage_error(capsys: Capsys, ca_dir: Path, hours: str) -> None:
    """`-1` printed a token that had already expired, `nan` and `inf` were internal errors."""
    code, out, err = run(
        capsys, "certs", "token", "--identity", "shop/web", "--dir", str(ca_dir),
        f"--ttl-hours={hours}",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "argument --ttl-hours: expected hours from 1 second" in err[-1]
    assert err[-1].endswith("(SMI7003)")


@pytest.mark.parametrize("hours", ["0.0003", "24", "8760"])
def test_ttl_hours_in_range_give_a_live_token(capsys: Capsys, ca_dir: Path, hours: str) -> None:
    from webhook.auth import BootstrapTokens, token_key

    code, out, _ = run(
        capsys, "certs", "token", "--identity", "shop/web", "--dir", str(ca_dir),
        "--ttl-hours", hours,
    )  # fmt: skip
    assert code == 0
    ca = CertificateAuthority.load(
        (ca_dir / "ca.crt").read_bytes(), (ca_dir / "ca.key").read_bytes()
    )
    tokens = BootstrapTokens(key=token_key(ca.key), trust_domain="cluster.local")
    assert tokens.authenticate(out.strip()).short == "shop/web"


@pytest.mark.parametrize("trust_domain", ["", "x..y", "A B"])
def test_token_trust_domain_is_named_as_such(
    capsys: Capsys, ca_dir: Path, trust_domain: str
) -> None:
    """`''` was blamed on --identity; `x..y` signed a token for an ID no certificate has. A
    malformed flag value is a usage error (exit 2), not a certificate problem (SMI7003)."""
    code, out, err = run(
        capsys, "certs", "token", "--identity", "shop/web", "--dir", str(ca_dir),
        "--trust-domain", trust_domain,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == [
        "smictl certs token: error: argument --trust-domain: "
        f"invalid trust domain {trust_domain!r} (SMI2006)"
    ]


@pytest.mark.parametrize("action", ["token", "workload"])
@pytest.mark.parametrize("identity", ["bad", "shop/", "Shop/web", "spiffe://x/ns/a"])
def test_a_malformed_identity_is_a_usage_error(
    capsys: Capsys, ca_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *,
    action: str, identity: str,
) -> None:  # fmt: skip
    """It was `--identity: ... (SMI7003)`, exit 1: a "certificate problem" for a typo in a
    flag, which the README's exit codes call a usage error (2)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "certs", action, "--identity", identity, "--dir", str(ca_dir))
    assert (code, out) == (2, "")
    assert err == [
        f"smictl certs {action}: error: argument --identity: {identity!r} is not an identity: "
        "use spiffe://<trust-domain>/ns/<ns>/sa/<sa> or ns/sa (SMI2006)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca"]  # nothing written


# --- certs: names and output paths ---------------------------------------------------------------


@pytest.mark.parametrize("action", ["init", "issue"])
@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--dns", "", "is not a DNS name"),
        ("--dns", "é.local", "is not a DNS name"),
        ("--dns", "bad name", "is not a DNS name"),
        ("--ip", "999.1.1.1", "is not an IP address"),
        ("--ip", "nope", "is not an IP address"),
    ],
)
def test_bad_server_names_are_usage_errors(
    capsys: Capsys, ca_dir: Path, tmp_path: Path, action: str, *, flag: str, value: str, says: str
) -> None:
    """init: internal errors (exit 70) or a certificate for `bad name`; issue: exit 1 with no
    flag named."""
    target = tmp_path / "target"
    dir_flag = ["--dir", str(target)] if action == "init" else ["--dir", str(ca_dir)]
    out_flag = [] if action == "init" else ["--out", str(target)]
    code, out, err = run(capsys, "certs", action, *dir_flag, *out_flag, flag, value)
    assert (code, out) == (2, "")
    assert f"argument {flag}: " in err[-1] and says in err[-1] and err[-1].endswith("(SMI7003)")
    assert not target.exists()


def test_wildcard_and_xn_names_are_dns_names(capsys: Capsys, tmp_path: Path) -> None:
    d = tmp_path / "certs"
    code, _, _ = run(
        capsys, "certs", "init", "--dir", str(d), "--dns", "*.svc.example", "xn--bcher-kva.example"
    )
    assert code == 0


def test_init_into_a_file_or_an_unwritable_place_is_one_line(
    capsys: Capsys, tmp_path: Path
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = run(capsys, "certs", "init", "--dir", str(a_file))
    assert (code, err) == (
        1,
        [f"--dir: {a_file}: cannot create the directory: not a directory (SMI7003)"],
    )
    code, _, err = run(capsys, "certs", "init", "--dir", "/proc/smictl-nope")
    assert code == 1 and len(err) == 1 and err[0].startswith("--dir: /proc/smictl-nope: cannot")


def test_init_where_a_file_is_a_directory_writes_nothing(capsys: Capsys, tmp_path: Path) -> None:
    d = tmp_path / "certs"
    (d / "server.crt").mkdir(parents=True)
    code, _, err = run(capsys, "certs", "init", "--dir", str(d))
    assert (code, err) == (1, [f"--dir: {d / 'server.crt'}: is a directory (SMI7003)"])
    assert sorted(p.name for p in d.iterdir()) == ["server.crt"]


@pytest.mark.parametrize("which", ["--cert-out", "--key-out"])
@pytest.mark.parametrize("kind", ["directory", "unwritable"])
def test_issue_writes_both_files_or_neither(
    capsys: Capsys, ca_dir: Path, tmp_path: Path, which: str, kind: str
) -> None:
    """The key used to be written before the certificate failed: a new key beside the old
    certificate, a pair a server cannot load (and exit 70)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    old_key, old_cert = b"old key", b"old cert"
    (out_dir / "server.key").write_bytes(old_key)
    (out_dir / "server.crt").write_bytes(old_cert)
    bad = tmp_path / "adir" if kind == "directory" else Path("/proc/smictl-nope/x")
    if kind == "directory":
        bad.mkdir()
    code, out, err = run(
        capsys, "certs", "issue", "--dir", str(ca_dir), "--out", str(out_dir), which, str(bad)
    )
    assert (code, out) == (1, "")
    assert len(err) == 1 and err[0].startswith(f"{which}: {bad}: ") and err[0].endswith("(SMI7003)")
    assert (out_dir / "server.key").read_bytes() == old_key
    assert (out_dir / "server.crt").read_bytes() == old_cert
    assert sorted(p.name for p in out_dir.iterdir()) == ["server.crt", "server.key"]


def test_issue_cert_and_key_into_one_file_is_refused(
    capsys: Capsys, ca_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "both.pem"
    code, _, err = run(
        capsys, "certs", "issue", "--dir", str(ca_dir),
        "--cert-out", str(target), "--key-out", str(target),
    )  # fmt: skip
    assert code == 1 and not target.exists()
    assert err == [
        f"--cert-out/--key-out: {target}: the certificate and key need two files (SMI7003)"
    ]


def test_issue_out_is_a_file(capsys: Capsys, ca_dir: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = run(capsys, "certs", "issue", "--dir", str(ca_dir), "--out", str(a_file))
    assert (code, err) == (
        1,
        [f"--out: {a_file}: cannot create the directory: not a directory (SMI7003)"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["certs", "init", "--dir", ""],
        ["certs", "issue", "--dir", ""],
        ["certs", "issue", "--out", ""],
        ["certs", "issue", "--cert-out", ""],
        ["certs", "token", "--identity", "shop/web", "--dir", ""],
        ["apply", "-f", ""],
        ["apply", "-f", "x.yaml", "--ca", ""],
        ["delete", "-f", ""],
    ],
)
def test_an_empty_path_is_a_usage_error(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    """`''` is the working directory: `certs init --dir ''` wrote a CA into it, `apply -f ''`
    sent every manifest in it."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert "an empty path names no file (SMI1001)" in err[-1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["get", "trafficsplits", "-n", "Bad_NS"], "argument -n/--namespace: 'Bad_NS' is not"),
        (["get", "trafficsplits", "-n", ""], "argument -n/--namespace: '' is not"),
        (["get", "trafficsplit", ""], "argument name: resource name may not be empty (SMI1009)"),
        (["delete", "trafficsplit", "", "-n", "shop"], "argument name: resource name may not"),
        (["delete", "trafficsplit", "x", "-n", "é"], "argument -n/--namespace: 'é' is not"),
    ],
)
def test_store_cli_names_are_checked_before_sending(
    capsys: Capsys, argv: list[str], says: str
) -> None:
    """`get KIND ''` listed every object of the kind; a bad -n was sent to the server."""
    code, out, err = run(capsys, *argv, "--server", "https://127.0.0.1:1")
    assert (code, out) == (2, "")
    assert says in err[-1]


# --- SMI_WEBHOOK_* -------------------------------------------------------------------------------


def test_a_bad_variable_names_itself_once(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It read `SMI_WEBHOOK_WORKERS: SMI_WEBHOOK_WORKERS='abc': invalid literal for int() with
    base 10: 'abc' (SMI7009)`."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("SMI_WEBHOOK_WORKERS", "abc")
    code, out, err = run(capsys, "serve")
    assert (code, out) == (1, "")
    assert err == ["SMI_WEBHOOK_WORKERS='abc': must be a positive integer (SMI7009)"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LONG_POLL_SECONDS", "nan", "must be a positive number"),
        ("LONG_POLL_SECONDS", "inf", "must be a positive number no larger than 2147483647"),
        ("ENDPOINT_TTL_SECONDS", "-inf", "must be a positive number"),
        ("ENDPOINT_TTL_SECONDS", "x", "must be a positive number"),
        ("WORKERS", str(10**30), "must be a positive integer no larger than 2147483647"),
        ("THREADS", "1.5", "must be a positive integer"),
    ],
)
def test_numbers_a_server_cannot_use_are_refused(name: str, value: str, says: str) -> None:
    """`inf` seconds ended in an OverflowError traceback in gunicorn's config file
    (`int(long_poll_seconds)`), `nan` passed the `<= 0` test."""
    with pytest.raises(SMIError) as info:
        Settings.from_env({f"SMI_WEBHOOK_{name}": value})
    (d,) = info.value.diagnostics
    assert d.format() == f"SMI_WEBHOOK_{name}={value!r}: {says} (SMI7009)"


# --- serve's preflight ---------------------------------------------------------------------------


class Started(BaseException):
    """`os.execve` was reached: serve would have become gunicorn."""


def serve(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int | None, list[str]]:
    def execve(path: str, args: list[str], env: dict[str, str]) -> NoReturn:
        raise Started

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.chdir(tmp_path)  # where `--certs-dir ''` wrote a CA
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)
    base = ["serve", "--bind", "127.0.0.1:0", "--certs-dir", str(tmp_path / "certs")]
    try:
        code, _, err = run(capsys, *base, *argv)
    except Started:
        return None, capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bind", ""], "--bind '': expected HOST:PORT with a port from 0 to 65535, or fd://N"),
        (["--bind", "notaport"], "--bind 'notaport': expected HOST:PORT"),
        (["--bind", "127.0.0.1:99999"], "--bind '127.0.0.1:99999': expected HOST:PORT"),
        (["--bind", "fd://x"], "--bind 'fd://x': fd://N takes a file descriptor number"),
        (["--trust-domain", ""], "--trust-domain: invalid trust domain ''"),
        (["--trust-domain", "x..y"], "--trust-domain: invalid trust domain 'x..y'"),
        (["--service-account", "nope"], "--service-account: 'nope' is not an identity"),
        (["--control-plane-url", "notaurl"], "--control-plane-url 'notaurl': not an http(s) URL"),
        (["--excluded-namespaces", "ok,Bad_NS"], "--excluded-namespaces: 'Bad_NS' is not a DNS"),
        (["--proxy-image", " "], "--proxy-image: empty; injected pods would have no proxy image"),
        (["--workers", str(10**30)], "must be a positive integer no larger than 2147483647"),
    ],
)
def test_serve_refuses_values_gunicorn_or_the_mesh_cannot_use(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    """Each of these started gunicorn (a traceback for `--bind nope`) or served with it. A
    flag value that cannot work is a usage error: exit 2 (it was 1), and no file made."""
    code, err = serve(capsys, tmp_path, monkeypatch, *argv)
    assert code == 2, "gunicorn was started"
    assert len(err) == 1 and message in err[0] and err[0].endswith("(SMI7009)")
    assert not (tmp_path / "certs").exists()


def test_serve_refuses_a_store_or_address_file_that_is_a_directory(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = serve(
        capsys, tmp_path, monkeypatch, "--store", str(tmp_path), "--address-file", str(tmp_path)
    )
    assert code == 1
    assert err == [
        f"--store {tmp_path}: is a directory, not a SQLite file (SMI7009)",
        f"--address-file {tmp_path}: not a file in an existing directory (SMI7009)",
    ]


def test_serve_refuses_a_store_that_is_not_a_database(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said it was listening, then each worker failed to boot (`file is not a database`)
    and gunicorn exited 4; a store whose directory cannot be made went the same way."""
    not_a_db = tmp_path / "store.yaml"
    not_a_db.write_text("apiVersion: v1\nkind: List\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, err = serve(capsys, tmp_path, monkeypatch, "--store", str(not_a_db))
    assert (code, err) == (1, [f"--store {not_a_db}: is not a SQLite database (SMI7009)"])
    nested = blocker / "store.db"
    code, err = serve(capsys, tmp_path, monkeypatch, "--store", str(nested))
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"--store {nested}: cannot be opened or created: ")
    assert not_a_db.read_text() == "apiVersion: v1\nkind: List\n"  # (left as it was)


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_serve_certs_dir_that_cannot_be_made_is_one_line(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """It was an internal error (exit 70: FileExistsError, FileNotFoundError)."""
    target = tmp_path / "file" if kind == "file" else Path("/proc/smictl-nope")
    if kind == "file":
        target.write_text("x")
    code, err = serve(capsys, tmp_path, monkeypatch, "--certs-dir", str(target))
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"--certs-dir: {target}: cannot create the directory")


@pytest.mark.parametrize(
    "flag", ["--certs-dir", "--cert", "--store", "--policies", "--kubeconfig", "--address-file"]
)
def test_serve_empty_paths_are_usage_errors(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    code, err = serve(capsys, tmp_path, monkeypatch, flag, "")
    assert code == 2
    assert f"argument {flag}: an empty path names no file (SMI1001)" in err[-1]


def test_serve_good_values_still_start(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = serve(
        capsys, tmp_path, monkeypatch,
        "--trust-domain", "example.org", "--service-account", "ops/cp",
        "--control-plane-url", "https://cp.local:8443", "--excluded-namespaces", "",
        "--address-file", str(tmp_path / "addr"), "--store", str(tmp_path / "s.db"),
    )  # fmt: skip
    assert code is None, err


@pytest.mark.parametrize(
    ("command", "flag", "name"),
    [
        (("workload", "--identity", "shop/web"), "--cert-out", "ca.crt"),
        (("workload", "--identity", "shop/web"), "--key-out", "ca.key"),
        (("issue",), "--key-out", "ca.key"),
        (("issue",), "--cert-out", "ca.crt"),
    ],
)
def test_an_output_over_the_mesh_ca_is_refused(
    capsys: Capsys, ca_dir: Path, command: tuple[str, ...], flag: str, name: str
) -> None:
    """`certs workload --cert-out ca/ca.crt --key-out ca/ca.key` replaced the mesh CA with a
    leaf, and its key, exit 0: every later token or certificate then failed."""
    before = {p.name: p.read_bytes() for p in ca_dir.iterdir() if p.is_file()}
    target = ca_dir / name
    code, out, err = run(capsys, "certs", *command, "--dir", str(ca_dir), flag, str(target))
    assert code == 1 and out == ""
    assert err == [
        f"{flag}: {target} is the mesh CA's own file: write elsewhere "
        "(`certs init --force` replaces the CA) (SMI7003)"
    ]
    assert {p.name: p.read_bytes() for p in ca_dir.iterdir() if p.is_file()} == before


def test_a_token_from_an_expired_ca_is_refused(capsys: Capsys, tmp_path: Path) -> None:
    """A token is worth a certificate only from a CA that still signs (the CSR endpoint answers
    503 once it has expired); `certs workload` refused alike, `certs token` printed one."""
    from datetime import timedelta

    expired = tmp_path / "expired"
    expired.mkdir()
    ca = CertificateAuthority.create(ttl=timedelta(seconds=-1))
    (expired / "ca.crt").write_bytes(ca.cert_pem())
    (expired / "ca.key").write_bytes(ca.key_pem())
    code, out, err = run(capsys, "certs", "token", "--identity", "shop/web", "--dir", str(expired))
    assert code == 1 and out == ""
    assert len(err) == 1 and "the mesh CA expired at" in err[0] and err[0].endswith("(SMI7003)")
