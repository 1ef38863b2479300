"""Fixtures for the Rego engine, the admission chain and `smictl admit` / `smictl policy`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from policy_types import RunCli, WritePolicy

from smi.cli import main
from smi.policy.policyset import PolicySet


def metadata(*, code: str = "T0001", enforcement: str = "deny", extra: str = "") -> str:
    lines = ["# METADATA", "# title: test policy", "# custom:", f"#   code: {code}"]
    lines.append(f"#   enforcement: {enforcement}")
    lines.extend(f"#   {x}" for x in extra.splitlines() if x)
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_policy(tmp_path: Path) -> WritePolicy:
    """Write `<root>/<area>/<name>/policy.rego` (and optional tests); return the root."""

    def write(
        name: str,
        body: str,
        *,
        root: str = "policies",
        area: str = "org",
        code: str = "T0001",
        enforcement: str = "deny",
        extra: str = "",
        test: str | None = None,
        with_metadata: bool = True,
    ) -> Path:
        d = tmp_path / root / area / name
        d.mkdir(parents=True, exist_ok=True)
        head = metadata(code=code, enforcement=enforcement, extra=extra) if with_metadata else ""
        package = f"package test.{name.replace('-', '_')}\n\nimport rego.v1\n\n"
        (d / "policy.rego").write_text(head + package + textwrap.dedent(body))
        if test is not None:
            tpkg = f"package test.{name.replace('-', '_')}_test\n\nimport rego.v1\n\n"
            (d / "policy_test.rego").write_text(tpkg + textwrap.dedent(test))
        return tmp_path / root

    return write


@pytest.fixture(scope="session")
def shipped() -> PolicySet:
    """The policies that ship with smictl, checked and compiled once per session."""
    return PolicySet.load()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """`smictl ARGS...` in this process: (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run
