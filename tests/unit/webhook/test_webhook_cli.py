"""`smictl certs`, `smictl serve`'s settings and preflight, and the store CLI's helpers."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from smi.cli import main
from smi.errors import SMIError
from smi.identity import Identity
from smi.pki import CertificateAuthority, load_certificate
from webhook.auth import BootstrapTokens, token_key
from webhook.cli import FlagError, preflight
from webhook.settings import Settings
from webhook.store_cli import kind_of, table


def test_certs_init_issue_and_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "certs"
    assert main(["certs", "init", "--dir", str(d), "--dns", "cp.example", "--ip", "127.0.0.1"]) == 0
    assert (d / "ca.key").stat().st_mode & 0o777 == 0o600
    ca = CertificateAuthority.load((d / "ca.crt").read_bytes(), (d / "ca.key").read_bytes())
    first = load_certificate((d / "server.crt").read_bytes())
    assert ca.issued(first)
    # init refuses to replace a CA that workloads trust
    assert main(["certs", "init", "--dir", str(d)]) == 1
    assert "pass --force" in capsys.readouterr().err
    out = tmp_path / "out"
    assert (
        main(
            [
                "certs",
                "issue",
                "--ca-dir",
                str(d),
                "--dns",
                "a.example",
                "b.example",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    renewed = load_certificate((out / "server.crt").read_bytes())
    assert ca.issued(renewed) and renewed.serial_number != first.serial_number
    capsys.readouterr()
    assert main(["certs", "token", "--identity", "shop/web", "--dir", str(d)]) == 0
    token = capsys.readouterr().out.strip()
    tokens = BootstrapTokens(key=token_key(ca.key), trust_domain="cluster.local")
    assert tokens.authenticate(token) == Identity.parse("shop/web")
    with pytest.raises(SystemExit) as usage:  # argparse's: a usage error
        main(["certs", "token", "--identity", "Not An Identity", "--dir", str(d)])
    assert usage.value.code == 2
    assert "argument --identity: 'Not An Identity' is not an identity" in capsys.readouterr().err


def test_preflight_reports_every_problem_in_one_go(tmp_path: Path) -> None:
    settings = Settings(
        cert_file=tmp_path / "missing.crt",
        key_file=tmp_path / "missing.key",
        policies=(tmp_path / "nope",),
        kubeconfig=str(tmp_path / "kubeconfig"),
    )
    with pytest.raises(SMIError) as info:
        preflight(settings)
    assert not isinstance(info.value, FlagError)  # files: exit 1
    messages = [d.message for d in info.value.diagnostics]
    assert any("missing.crt: no such file" in m for m in messages)
    assert any("missing.key: no such file" in m for m in messages)
    assert any("not a directory" in m for m in messages)
    assert any("--kubeconfig" in m for m in messages)


def test_preflight_reports_flag_values_before_files(tmp_path: Path) -> None:
    """A flag value is a usage error (FlagError, exit 2), found before any file is looked at."""
    settings = Settings(cert_file=tmp_path / "missing.crt", workers=0, bind="nope")
    with pytest.raises(FlagError) as info:
        preflight(settings)
    assert [d.format() for d in info.value.diagnostics] == [
        "--bind 'nope': expected HOST:PORT with a port from 0 to 65535, or fd://N "
        "(IPv6: [ADDRESS]:PORT) (SMI7009)",
        "--workers 0: must be a positive integer (SMI7009)",
        "--cert and --key go together (SMI7003)",
    ]


def test_in_cluster_outside_a_pod_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SMIError, match="not running in a Kubernetes pod"):
        preflight(Settings(kubeconfig="in-cluster"))


def test_serve_flags_become_settings(tmp_path: Path) -> None:
    from webhook.cli import register_serve, settings_from_args

    parser = argparse.ArgumentParser()
    register_serve(parser.add_subparsers())
    args = parser.parse_args(
        [
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--certs-dir",
            str(tmp_path),
            "--mode",
            "audit",
            "--policies",
            str(tmp_path),
            "--excluded-namespaces",
            "a, b",
            "--workers",
            "3",
        ]
    )
    s = settings_from_args(args)
    assert (s.bind, s.mode, s.workers) == ("127.0.0.1:0", "audit", 3)
    assert s.excluded_namespaces == ("a", "b") and s.policies == (tmp_path,)
    assert s.cert_file == tmp_path / "server.crt" and s.cert_file.is_file()  # created
    assert s.mesh_ca_key_file == tmp_path / "ca.key"
    assert Settings.from_env(s.to_env()) == s


def test_kind_names_and_table() -> None:
    assert kind_of("trafficsplits") == "TrafficSplit"
    assert kind_of("HTTPRouteGroup") == "HTTPRouteGroup"
    assert kind_of("all") == ""
    with pytest.raises(SMIError, match="unknown kind"):
        kind_of("deployments.apps")
    rendered = table(
        [
            {
                "kind": "TrafficSplit",
                "apiVersion": "split.smi-spec.io/v1alpha4",
                "metadata": {"name": "a", "namespace": "shop", "resourceVersion": "3"},
            }
        ]
    )
    assert rendered.splitlines()[1].split() == [
        "TrafficSplit",
        "shop",
        "a",
        "split.smi-spec.io/v1alpha4",
        "3",
    ]
    assert table([]) == "No resources found."


def test_unreachable_server_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "s.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    assert main(["apply", "-f", str(manifest), "--server", "https://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the control plane" in err[0] and "(SMI7001)" in err[0]


def test_apply_reports_load_errors_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("kind: TrafficSplit\nmetadata: {name: x}\n")
    assert main(["apply", "-f", str(manifest), "--server", "https://127.0.0.1:9"]) == 1
    assert f"{manifest}:1:" in capsys.readouterr().err


def test_a_bad_variable_breaks_only_serve(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMI_WEBHOOK_MODE", "enforce")
    assert main(["version"]) == 0
    capsys.readouterr()
    assert main(["serve", "--bind", "127.0.0.1:0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SMI_WEBHOOK_MODE='enforce'" in err[0] and "(SMI7009)" in err[0]


# --- who else can read what serve and certs init make ---------------------------------------------


class Started(BaseException):
    """`os.execve` was called: serve passed its checks (a BaseException, past smictl's net)."""


@pytest.fixture
def umask022() -> Iterator[None]:
    """The common umask, under which mkdir and sqlite3 made everything readable by all."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def no_exec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`smictl serve` stops where it would become gunicorn; its state directory is returned."""

    def execve(path: str, argv: list[str], env: dict[str, str]) -> NoReturn:
        raise Started

    monkeypatch.setattr(os, "execve", execve)
    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "smictl"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.usefixtures("umask022")
def test_serve_makes_the_state_and_certs_directories_private(
    no_exec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They were 0755: any local user could list them (and read the 0644 store in one)."""
    with pytest.raises(Started):
        main(["serve", "--bind", "127.0.0.1:0"])
    assert _mode(tmp_path / "xdg") == 0o700  # missing parents too, as XDG asks
    assert _mode(no_exec) == 0o700
    assert _mode(no_exec / "certs") == 0o700
    assert _mode(no_exec / "certs" / "admin.token") == 0o600
    assert capsys.readouterr().err == ""  # nothing to warn about


@pytest.mark.usefixtures("umask022")
def test_serve_keeps_an_open_certs_dir_and_store_and_says_so_once(
    no_exec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs, store = tmp_path / "certs", tmp_path / "store.db"
    certs.mkdir(mode=0o755)
    store.write_bytes(b"")
    store.chmod(0o644)
    with pytest.raises(Started):
        main(["serve", "--bind", "127.0.0.1:0", "--certs-dir", str(certs), "--store", str(store)])
    assert (_mode(certs), _mode(store)) == (0o755, 0o644)  # the user's: not changed
    assert capsys.readouterr().err.splitlines() == [
        f"smictl serve: warning: --certs-dir {certs}: other users can open it (mode 0755); "
        f"keep it private: chmod 700 {certs}",
        f"smictl serve: warning: --store {store}: other users can open it, and read every SMI "
        f"object (mode 0644); keep it private: chmod 600 {store}*",
    ]


@pytest.mark.usefixtures("umask022")
def test_serve_warns_of_an_open_state_directory_from_before(
    no_exec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: a directory from before keeps its mode, with one warning if other users can
    open it. The state directory itself (`~/.local/state/smictl`, 0755) went without one."""
    (no_exec / "certs").mkdir(parents=True, mode=0o700)
    no_exec.chmod(0o755)
    with pytest.raises(Started):
        main(["serve", "--bind", "127.0.0.1:0"])
    assert _mode(no_exec) == 0o755
    assert capsys.readouterr().err.splitlines() == [
        f"smictl serve: warning: state directory {no_exec}: other users can open it "
        f"(mode 0755); keep it private: chmod 700 {no_exec}"
    ]


@pytest.mark.usefixtures("umask022")
def test_certs_init_makes_its_directory_private_and_keeps_an_existing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tmp_path / "new" / "certs"
    assert main(["certs", "init", "--dir", str(made)]) == 0
    assert (_mode(made.parent), _mode(made)) == (0o700, 0o700)
    assert capsys.readouterr().err == ""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    assert main(["certs", "init", "--dir", str(shared)]) == 0
    assert _mode(shared) == 0o750
    assert capsys.readouterr().err.splitlines() == [
        f"smictl certs init: warning: --dir {shared}: other users can open it (mode 0750); "
        f"keep it private: chmod 700 {shared}"
    ]


def test_a_leftover_temporary_file_does_not_give_the_key_its_mode(tmp_path: Path) -> None:
    """os.open's mode applies only to a file it creates: a ca.key.tmp left at 0644 made the
    CA key 0644."""
    from smi.cli import main

    certs = tmp_path / "certs"
    certs.mkdir(mode=0o700)
    leftover = certs / "ca.key.tmp"
    leftover.write_text("old")
    leftover.chmod(0o644)
    assert main(["certs", "init", "--dir", str(certs)]) == 0
    assert (certs / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (certs / "server.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("names", "kind"),
    [
        (("statefulset", "statefulsets", "sts", "StatefulSet"), "StatefulSet"),
        (("daemonset", "daemonsets", "ds"), "DaemonSet"),
        (("replicaset", "replicasets", "rs"), "ReplicaSet"),
        (("replicationcontroller", "replicationcontrollers", "rc"), "ReplicationController"),
        (("job", "jobs", "Job"), "Job"),
        (("cronjob", "cronjobs", "cj"), "CronJob"),
    ],
)
def test_every_kind_the_store_holds_can_be_named(names: tuple[str, ...], kind: str) -> None:
    """The store took StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs and
    CronJobs, and `get all` listed them, but `get KIND` and `delete KIND NAME` refused their
    names (SMI1007): only `delete -f` removed them."""
    assert {kind_of(name) for name in names} == {kind}
