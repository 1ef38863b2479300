"""`smictl serve`'s numeric flags are checked before gunicorn starts, as their variables are.

A value argparse takes (`--workers 0`) but the settings refuse used to reach gunicorn, whose
config file re-read it and printed a 25-line traceback instead of the one-line error."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

import webhook
from smi.cli import main


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
    assert code == 1
    assert len(err) == 1 and err[0].endswith(
        f"{flag} {value}: must be a positive integer (SMI7009)"
    )


def test_every_bad_number_is_reported_in_one_go(serve: Serve) -> None:
    code, err, started = serve("--workers", "0", "--threads", "-1")
    assert (code, started) == (1, None)
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
