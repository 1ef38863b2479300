"""A run that verified nothing does not read as a pass. `run --target proxy --scenario
'access/udp*'` skipped both scenarios (smictl proxy carries no UDP) and printed `PASS`, exit 0:
a CI gate green on a run that showed nothing about the mesh."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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
