"""`smictl conformance run|list` (through `python -m conformance`, the same register function):
exit codes, selection, reports, and a broken scenario directory."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conformance.__main__ import main

BROKEN = """
description: wrong on purpose - nothing allows the intruder
capability: traffic-access/allow
smi_versions: [access.smi-spec.io/v1alpha3]
workloads:
  - identity: shop/intruder
  - {identity: shop/catalog, services: [catalog], ports: [8080]}
steps:
  - request: {from: shop/intruder, to: catalog}
    expect: {status: 200}
"""


def _write(root: Path, name: str, text: str) -> Path:
    path = root / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_run_selected_scenarios_in_process_and_write_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--scenario",
            "split/weights.*",
            "--smi-version",
            "v0.6.0",
            "--report",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "smictl conformance: 1 scenario on inproc" in out
    assert "PASS inproc   split/weights.split-v1alpha4" in out
    assert "inproc   split.smi-spec.io/v1alpha4         1     0     0  full" in out
    assert {p.name for p in tmp_path.iterdir()} == {
        "conformance-junit.xml",
        "conformance.json",
        "conformance.md",
        "conformance.html",
    }


def test_a_failing_scenario_exits_1_with_expected_and_got(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _write(tmp_path / "suite", "access/broken", BROKEN)
    code = main(["run", "--dir", str(root), "-q", "--report", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL inproc   access/broken" in out
    assert "status: expected 200 for every request, got 403" in out
    assert "FAIL in" in out
    md = (tmp_path / "out" / "conformance.md").read_text()
    assert "**Result: FAIL**" in md


def test_a_broken_scenario_file_exits_1_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _write(
        tmp_path, "access/typo", BROKEN.replace("expect: {status: 200}", "expect: {stauts: 200}")
    )
    assert main(["list", "--dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{root}/access/typo.yaml:10: steps[0].expect.stauts: Extra inputs are not permitted" in err
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--target", "envoy"], "unknown target 'envoy'"),
        (["run", "--smi-version", "v0.9.0"], "unknown SMI version 'v0.9.0'"),
        (["run", "--scenario", "nothing/*"], "no scenario matches the selection"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--smi-version", "split.smi-spec.io/v1alpha1"]) == 0
    out = capsys.readouterr().out
    assert "split/weights.split-v1alpha1" in out and "access/udp" not in out


def test_the_verdict_is_the_last_line_after_the_report_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--scenario", "split/weights.split-v1alpha4", "--report", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[-1].startswith("PASS in ")
    assert lines[-2] == f"    html: {tmp_path / 'conformance.html'}"
