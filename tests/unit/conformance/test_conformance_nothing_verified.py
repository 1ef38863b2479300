"""A run that verified nothing does not read as a pass. `run --target proxy --scenario
'access/udp*'` skipped both scenarios (smictl proxy carries no UDP) and printed `PASS`, exit 0:
a CI gate green on a run that showed nothing about the mesh."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conformance_fakes import FakeTarget

import conformance.targets
from conformance.__main__ import main


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch) -> Callable[[set[str]], None]:
    """Targets that pass the minimal scenario (a request denied without a TrafficTarget),
    except those named, which cannot run its request step."""

    def use(skipping: set[str]) -> None:
        def make(name: str) -> FakeTarget:
            target = FakeTarget(unsupported_kinds=("request",) if name in skipping else ())
            target.name = name
            return target

        monkeypatch.setattr(conformance.targets, "make_target", make)

    return use


@pytest.fixture
def suite(scenario_dir: Callable[[dict[str, str]], Path], scenario_text: str) -> Path:
    return scenario_dir({"access/only": scenario_text})


def test_every_scenario_skipped_is_nothing_verified_and_exit_3(
    targets: Callable[[set[str]], None],
    suite: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    targets({"proxy"})
    code = main(["run", "--target", "proxy", "--dir", str(suite), "--report", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 3
    assert "smictl conformance: 1 scenario on proxy\n" in out
    assert "proxy: 0 passed, 0 failed, 1 skipped, 0 errors" in out
    [verdict] = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL", "NOTH"))]
    assert verdict.startswith("NOTHING VERIFIED in ")
    assert verdict.endswith(" s: every selected scenario was skipped on proxy")
    doc = json.loads((tmp_path / "r" / "conformance.json").read_text())
    assert (doc["ok"], doc["verdict"], doc["unverified_targets"]) == (
        False,
        "NOTHING VERIFIED",
        ["proxy"],
    )
    md = (tmp_path / "r" / "conformance.md").read_text()
    assert "**Result: NOTHING VERIFIED** — every selected scenario was skipped on proxy" in md
    assert (
        "NOTHING VERIFIED: every selected scenario"
        in (tmp_path / "r" / "conformance.html").read_text()
    )


def test_one_target_that_verified_nothing_is_enough(
    targets: Callable[[set[str]], None], suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets({"proxy"})
    assert main(["run", "--target", "inproc,proxy", "--dir", str(suite), "-q"]) == 3
    out = capsys.readouterr().out
    assert "inproc: 1 passed" in out
    assert "every selected scenario was skipped on proxy" in out


def test_a_run_that_verified_something_still_passes(
    targets: Callable[[set[str]], None], suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets(set())
    assert main(["run", "--target", "inproc,proxy", "--dir", str(suite), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("PASS in ")
    assert "NOTHING VERIFIED" not in out


def test_list_counts_one_scenario_in_the_singular(
    suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--dir", str(suite)]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "1 scenario"


def test_a_target_that_failed_is_not_unverified(
    monkeypatch: pytest.MonkeyPatch,
    suite: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`unverified_targets` listed the targets where every scenario failed: docs/conformance.md
    names there the targets where every selected scenario was skipped."""

    class AllowsAll(FakeTarget):  # (the scenario's request must be denied: it fails here)
        def begin(self, scenario: Any) -> None:
            super().begin(scenario)
            self.applied = True

    def make(name: str) -> FakeTarget:
        target = AllowsAll() if name == "proxy" else FakeTarget()
        target.name = name
        return target

    monkeypatch.setattr(conformance.targets, "make_target", make)
    code = main(["run", "--target", "inproc,proxy", "--dir", str(suite), "--report", str(tmp_path)])
    capsys.readouterr()
    doc = json.loads((tmp_path / "conformance.json").read_text())
    assert code == 1
    assert doc["totals"]["proxy"].get("passed", 0) == 0
    assert (doc["verdict"], doc["unverified_targets"]) == ("FAIL", [])


@pytest.mark.parametrize("argv", [["conformance", "--help"], ["conformance", "run", "--help"]])
def test_the_help_says_what_runs_and_what_the_exit_codes_mean(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """It said neither: no targets, no exit codes, nothing of what another mesh would need."""
    from smi.cli import main as smictl

    with pytest.raises(SystemExit) as done:
        smictl(argv)
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "targets: inproc" in text and "proxy (real smictl proxies" in text
    assert "3 nothing failed but a target verified nothing" in text
    assert "docs/conformance.md" in text
