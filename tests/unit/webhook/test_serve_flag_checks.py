"""`smictl serve`'s flags are checked before gunicorn starts (and before any file is made), as
their variables are.

A value argparse takes (`--workers 0`) but the settings refuse used to reach gunicorn, whose
config file re-read it and printed a 25-line traceback instead of the one-line error. Such a
value is a usage error, exit 2, as the README says of every smictl command; a port in use is
the machine's state, not the command line's: one line, exit 1."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

import webhook
from smi.cli import main
from webhook.settings import Settings


class Started(BaseException):
    """`os.execve` was called: serve got past its checks and would have become gunicorn (a
    BaseException, so that smictl's last line of defence does not turn it into exit 70)."""


Serve = Callable[..., tuple[int | None, list[str], dict[str, str] | None]]


@pytest.fixture
def serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Serve:
    """`smictl serve --bind 127.0.0.1:0 ARGS...` up to the point of starting gunicorn:
    (exit code or None, standard error lines, the environment gunicorn would get or None)."""

    def execve(path: str, argv: list[str], env: dict[str, str]) -> NoReturn:
        raise Started(env)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)

    def run(*argv: str) -> tuple[int | None, list[str], dict[str, str] | None]:
        base = ["serve", "--bind", "127.0.0.1:0", "--certs-dir", str(tmp_path / "certs")]
        code: int | None = None
        env: dict[str, str] | None = None
        try:
            code = main([*base, *argv])
        except Started as started:
            env = started.args[0]
        return code, capsys.readouterr().err.strip().splitlines(), env

    return run


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--workers", "0"),
        ("--workers", "-2"),
        ("--threads", "0"),
        ("--threads", "-1"),
        ("--max-review-bytes", "0"),
        ("--max-review-bytes", "-4096"),
        ("--max-parked-polls", "0"),
    ],
)
def test_an_out_of_range_number_is_one_line_before_gunicorn(
    serve: Serve, flag: str, value: str
) -> None:
    code, err, started = serve(flag, value)
    assert started is None, "gunicorn was started"
    assert code == 2  # a usage error, as the README's exit codes say (it was 1)
    assert len(err) == 1 and err[0].endswith(
        f"{flag} {value}: must be a positive integer (SMI7009)"
    )


def test_every_bad_number_is_reported_in_one_go(serve: Serve) -> None:
    code, err, started = serve("--workers", "0", "--threads", "-1")
    assert (code, started) == (2, None)
    assert len(err) == 2
    assert err[0].endswith("--workers 0: must be a positive integer (SMI7009)")
    assert err[1].endswith("--threads -1: must be a positive integer (SMI7009)")


def test_numbers_in_range_reach_gunicorn(serve: Serve) -> None:
    code, err, env = serve("--workers", "1", "--threads", "2", "--max-review-bytes", "1")
    assert code is None and env is not None, err
    assert (env["SMI_WEBHOOK_WORKERS"], env["SMI_WEBHOOK_THREADS"]) == ("1", "2")
    assert env["SMI_WEBHOOK_MAX_REVIEW_BYTES"] == "1"


def test_the_parked_poll_cap_reaches_gunicorn_as_worker_connections(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    code, err, env = serve("--max-parked-polls", "5000")
    assert code is None and env is not None, err
    assert env["SMI_WEBHOOK_MAX_PARKED_POLLS"] == "5000"
    for name, value in env.items():
        if name.startswith("SMI_WEBHOOK_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp")  # the config would make one
    conf = runpy.run_path(str(Path(webhook.__file__).with_name("gunicorn.conf.py")))
    assert conf["worker_connections"] == 5000


def test_the_environment_check_is_unchanged(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMI_WEBHOOK_WORKERS", "0")
    code, err, started = serve()
    assert (code, started) == (1, None)
    assert len(err) == 1 and "SMI_WEBHOOK_WORKERS='0': must be a positive integer" in err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--bind", "nonsense"],
        ["--bind", "::1:8443"],  # gunicorn read host '' and port '': a traceback
        ["--workers", "0"],
        ["--trust-domain", ""],
        ["--client-ca", "ca.pem", "--client-names", ""],
    ],
)
def test_a_bad_value_makes_no_file(serve: Serve, tmp_path: Path, argv: list[str]) -> None:
    """`--bind nonsense --certs-dir ./x` wrote a CA, a serving pair and an admin token into ./x,
    then refused --bind."""
    code, err, started = serve(*argv)
    assert (code, started) == (2, None)
    assert len(err) == 1 and err[0].endswith("(SMI7009)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no certs/, no state/


def test_cert_without_key_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)
    (tmp_path / "server.crt").write_text("x")
    code = main(["serve", "--bind", "127.0.0.1:0", "--cert", str(tmp_path / "server.crt")])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == ["--cert and --key go together (SMI7003)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.crt"]  # no admin.token


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on, as a second `smictl serve` finds 8443."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_in_use_is_one_line_before_gunicorn(serve: Serve, taken_port: int) -> None:
    """It was eleven `[ERROR] Connection in use` lines from gunicorn over five seconds."""
    code, err, started = serve("--bind", f"127.0.0.1:{taken_port}")
    assert (code, started) == (1, None)
    assert err == [
        f"--bind 127.0.0.1:{taken_port}: cannot listen there: address already in use "
        "(is another server running?); pass --bind HOST:PORT (SMI7009)"
    ]


def test_a_free_port_and_bracketed_ipv6_reach_gunicorn(serve: Serve) -> None:
    with socket.socket() as probe:  # a port free a moment ago, as 8443 normally is
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err, env = serve("--bind", f"127.0.0.1:{port}")
    assert code is None and env is not None, err
    code, err, env = serve("--bind", "[::1]:0")
    assert code is None and env is not None and env["SMI_WEBHOOK_BIND"] == "[::1]:0", err


def test_every_setting_flag_says_what_it_is_and_its_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eight flags had no help text at all; each now says what docs/control-plane.md's
    settings table says, with the default it would use."""
    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = Settings()
    for expected in [
        "--mesh-ca-cert FILE the mesh CA certificate, which signs workload certificates "
        "(default: ca.crt in the certs directory;",
        "--mesh-ca-key FILE the mesh CA's key (default: ca.key in the certs directory)",
        "--trust-domain TRUST_DOMAIN SPIFFE trust domain of the mesh's workload identities "
        "(default cluster.local)",
        "--excluded-namespaces NAMES namespaces admitted and never injected, comma-separated "
        "(default kube-system,kube-public,kube-node-lease)",
        f"--proxy-image IMAGE image of the injected proxy (default {defaults.proxy_image})",
        "--workers N gunicorn worker processes (default 2)",
        "--threads N threads per worker for requests that may block: store writes, "
        "certificate signing (default 16)",
        "--max-review-bytes N larger request bodies get a 400 (default 3145728)",
    ]:
        assert expected in text


def test_socket_activation_skips_the_port_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under systemd socket activation the port is bound already, by the socket gunicorn
    adopts (LISTEN_FDS): the check said 'address already in use' and serve did not start."""
    from webhook.cli import _listen_problem

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        monkeypatch.delenv("LISTEN_FDS", raising=False)
        assert _listen_problem(bind) is not None
        monkeypatch.setenv("LISTEN_FDS", "1")
        assert _listen_problem(bind) is None


def test_the_address_file_is_not_written_through_a_planted_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`when_ready` staged the address in a predictable `FILE.tmp`, followed if it was a
    symlink another user had put there: the server overwrote the file it pointed to."""
    import runpy
    import socket
    from types import SimpleNamespace

    victim = tmp_path / "victim"
    victim.write_text("important\n")
    target = tmp_path / "address"
    (tmp_path / "address.tmp").symlink_to(victim)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the config would make one
    monkeypatch.setenv("SMI_WEBHOOK_ADDRESS_FILE", str(target))
    conf = runpy.run_path(str(Path(webhook.__file__).with_name("gunicorn.conf.py")))
    with socket.create_server(("127.0.0.1", 0)) as sock:
        conf["when_ready"](SimpleNamespace(LISTENERS=[SimpleNamespace(sock=sock)]))
        port = sock.getsockname()[1]
    assert victim.read_text() == "important\n"
    assert target.read_text() in (f"http://127.0.0.1:{port}\n", f"https://127.0.0.1:{port}\n")
    capsys.readouterr()
