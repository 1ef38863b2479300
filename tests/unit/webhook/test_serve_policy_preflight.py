"""`smictl serve` loads the policy set it will run, with its parameters, before gunicorn starts.

A policy that did not compile used to pass the preflight: gunicorn started, wrote the address
file, logged "listening", and every worker died with a 50-line traceback ("Worker failed to
boot", exit 3). Now it is the PolicyError's own `file:line: message (SMI5001)` and exit 1; the
same for the shipped policies, and for `--parameters` (SMI_WEBHOOK_PARAMETERS), which is read by
`smictl admit --parameters`'s own reader and so fails with the same line."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from smi.cli import main
from smi.policy import policyset

BROKEN = """# METADATA
# title: syn
# custom:
#   code: B0001
#   enforcement: deny
package b.syn

import rego.v1

violation contains msg if {
\tmsg := "x"
\tx := [1, 2
}
"""


class Started(BaseException):
    """`os.execve` was called: serve passed its checks and would have become gunicorn."""


Serve = Callable[..., tuple[int | None, list[str], dict[str, str] | None]]


@pytest.fixture
def serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Serve:
    """`smictl serve ARGS...` up to the point of starting gunicorn: (exit code or None,
    standard error lines, the environment gunicorn would get or None)."""

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


def policy_dir(root: Path, source: str) -> Path:
    (root / "x" / "syn").mkdir(parents=True)
    (root / "x" / "syn" / "policy.rego").write_text(source, encoding="utf-8")
    return root


def test_a_policy_that_does_not_parse_is_one_line_before_gunicorn(
    serve: Serve, tmp_path: Path
) -> None:
    policies = policy_dir(tmp_path / "pol", BROKEN)
    address = tmp_path / "address"
    code, err, env = serve(
        "--policies", str(policies), "--no-shipped-policies", "--address-file", str(address)
    )
    assert env is None, "gunicorn was started"
    assert code == 1
    assert err == [f"{policies / 'x' / 'syn' / 'policy.rego'}:12: this is unclosed (SMI5001)"]
    assert not address.exists()


def test_the_shipped_policies_are_checked_the_same_way(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = policy_dir(tmp_path / "shipped", BROKEN)
    monkeypatch.setattr(policyset, "shipped_dir", lambda: shipped)
    code, err, env = serve()
    assert env is None and code == 1
    assert err == [f"{shipped / 'x' / 'syn' / 'policy.rego'}:12: this is unclosed (SMI5001)"]


def test_a_good_policy_set_reaches_gunicorn(serve: Serve, tmp_path: Path) -> None:
    good = BROKEN.replace("\tx := [1, 2\n", "")
    policies = policy_dir(tmp_path / "pol", good)
    code, err, env = serve("--policies", str(policies))
    assert code is None and env is not None, err
    assert env["SMI_WEBHOOK_POLICIES"] == str(policies)


def test_parameters_reach_the_workers_through_their_variable(serve: Serve, tmp_path: Path) -> None:
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("canaryMaxStep: 20\n", encoding="utf-8")
    code, err, env = serve("--parameters", str(parameters))
    assert code is None and env is not None, err
    assert env["SMI_WEBHOOK_PARAMETERS"] == str(parameters)


def test_the_parameters_variable_is_checked_as_the_flag_is(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.json"
    monkeypatch.setenv("SMI_WEBHOOK_PARAMETERS", str(missing))
    code, err, env = serve()
    assert env is None and code == 1
    assert err == [f"{missing}: cannot read policy parameters: no such file or directory (SMI5004)"]


@pytest.mark.parametrize(
    "content",
    [
        None,  # no such file
        "- a list\n- not a mapping\n",
        "a: 1\na: 2\n",  # a duplicate key
        "a: [1,\n",  # not YAML
        "",  # empty: it was taken as {} (a generating step that failed quietly)
        "# generated\n---\n",
        "null\n",
    ],
    ids=["missing", "not-a-mapping", "duplicate-key", "not-yaml", "empty", "comments", "null"],
)
def test_bad_parameters_fail_as_smictl_admit_parameters_does(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    parameters = tmp_path / "parameters.yaml"
    if content is not None:
        parameters.write_text(content, encoding="utf-8")
    manifest = tmp_path / "empty.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    main(["admit", "-f", str(manifest), "--parameters", str(parameters)])
    admit_err = capsys.readouterr().err.strip().splitlines()[0]
    assert "SMI5004" in admit_err

    code, err, env = serve("--parameters", str(parameters))
    assert env is None and code == 1
    assert err == [admit_err]
