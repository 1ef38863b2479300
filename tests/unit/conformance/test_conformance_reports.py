"""The four reports of a run, rendered from one RunResult with a pass, a failure, a skip and a
target that did not start: every format says what failed, what was expected and what happened."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.reports import FILES, render_html, render_junit, render_markdown, write_reports
from conformance.results import Check, RunResult, ScenarioResult, StepResult, SummaryRow

FAILED_CHECK = Check("status", "403 for every request", "200 x3", ok=False)


def _result(
    name: str,
    status: str,
    *,
    target: str = "inproc",
    versions: tuple[str, ...] = ("access.smi-spec.io/v1alpha3", "specs.smi-spec.io/v1alpha4"),
) -> ScenarioResult:
    steps = [
        StepResult(
            0,
            "apply",
            "apply routes, tt",
            "passed",
            (Check("apply", "accepted", "accepted", True),),
        )
    ]
    if status == "failed":
        steps.append(
            StepResult(
                1,
                "request",
                "3x GET / shop/intruder -> catalog",
                "failed",
                (Check("responses", "3", "3", True), FAILED_CHECK),
            )
        )
    if status == "skipped":
        steps.append(
            StepResult(
                1,
                "request",
                "UDP shop/frontend -> catalog:8301",
                "skipped",
                reason="proxy: UDP is not proxied",
            )
        )
    return ScenarioResult(
        scenario=name,
        target=target,
        description=f"about {name} <&>",
        capability="traffic-access/allow",
        smi_versions=versions,
        decisions=("default-deny",),
        status=status,  # type: ignore[arg-type]
        steps=tuple(steps),
        seconds=0.25,
    )


@pytest.fixture
def run() -> RunResult:
    return RunResult(
        targets=["inproc", "proxy"],
        results=[
            _result("access/allow.v0.6.0", "passed"),
            _result("access/deny.v0.6.0", "failed"),
            _result("access/udp.v0.6.0", "skipped"),
            _result(
                "split/weights.split-v1alpha1", "passed", versions=("split.smi-spec.io/v1alpha1",)
            ),
        ],
        started="2024-06-01T00:00:00+00:00",
        seconds=1.5,
        version="0.1.0",
        selection={"target": "all", "smi-version": "all"},
        target_errors={"proxy": "smictl proxy did not become ready within 10 s"},
    )


def test_summary_capabilities(run: RunResult) -> None:
    assert run.summary() == [
        SummaryRow("inproc", "access.smi-spec.io/v1alpha3", passed=1, failed=1, skipped=1),
        SummaryRow("inproc", "specs.smi-spec.io/v1alpha4", passed=1, failed=1, skipped=1),
        SummaryRow("inproc", "split.smi-spec.io/v1alpha1", passed=1, failed=0, skipped=0),
    ]
    assert [r.capability for r in run.summary()] == ["partial", "partial", "full"]
    assert SummaryRow("t", "g", 0, 2, 1).capability == "none"
    assert not run.ok


def test_junit(run: RunResult) -> None:
    root = ET.fromstring(render_junit(run))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "1", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"proxy", "inproc.access", "inproc.split"}
    assert suites["proxy"].get("errors") == "1"
    failure = root.find(".//testcase[@name='deny.v0.6.0']/failure")
    assert failure is not None
    assert failure.get("message") == (
        "step 2 (request) 3x GET / shop/intruder -> catalog: "
        "status: expected 403 for every request, got 200 x3"
    )
    skipped = root.find(".//testcase[@name='udp.v0.6.0']/skipped")
    assert skipped is not None and skipped.get("message") == "proxy: UDP is not proxied"


def test_json(run: RunResult, tmp_path: Path) -> None:
    paths = write_reports(run, tmp_path / "out")
    assert {p.name for p in paths.values()} == set(FILES.values())
    doc = json.loads(paths["json"].read_text())
    assert doc["ok"] is False
    assert doc["totals"]["inproc"] == {"passed": 2, "failed": 1, "skipped": 1}
    step = doc["results"][1]["steps"][1]
    assert step["checks"][1] == {
        "what": "status",
        "expected": "403 for every request",
        "got": "200 x3",
        "ok": False,
    }
    assert doc["summary"][0]["capability"] == "partial"


def test_markdown(run: RunResult) -> None:
    text = render_markdown(run)
    assert "**Result: FAIL**" in text
    assert "| inproc | `split.smi-spec.io/v1alpha1` | 1 | 0 | 0 | **full** |" in text
    assert ("  - status: expected `403 for every request`, got `200 x3`") in text
    assert "- proxy: UDP is not proxied — 1 scenario(s): `access/udp.v0.6.0`" in text
    assert "- **proxy**: smictl proxy did not become ready within 10 s" in text


def test_html_is_self_contained_and_escaped(run: RunResult) -> None:
    page = render_html(run)
    assert page.startswith("<!doctype html>")
    for external in ("<script", "<link", "src=", "http://", "https://"):
        assert external not in page
    assert "about access/allow.v0.6.0 &lt;&amp;&gt;" in page
    assert "<code>403 for every request</code>, got <code>200 x3</code>" in page
    assert '<details open><summary><span class="badge failed">failed</span>' in page
