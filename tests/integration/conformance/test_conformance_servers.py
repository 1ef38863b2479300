"""The conformance suite against real servers: the whole suite through real proxies, the
webhook target through the CLI, and the live demo (bounded, interrupted, and cleaned up)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.catalog import discover
from conformance.reports import write_reports
from conformance.runner import run
from conformance.targets.proxy import ProxyTarget

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _needs_conformance_control_plane() -> None:
    from webhook.settings import Settings

    if "shipped_policies" not in {f.name for f in dataclasses.fields(Settings)}:
        pytest.skip(
            "the control plane does not honour SMI_WEBHOOK_SHIPPED_POLICIES=false yet; "
            "the server targets need it (docs/conformance.md)"
        )


def test_whole_suite_through_real_proxies_passes(tmp_path: Path) -> None:
    _needs_conformance_control_plane()
    scenarios = discover()
    result = run([ProxyTarget()], scenarios)
    problems = {
        r.scenario: {
            f"step {s.number} ({s.kind}) {s.title}": s
            for s in r.steps
            if s.status in ("failed", "error")
        }
        for r in result.results
        if r.status in ("failed", "error")
    }
    assert {k: sorted(v) for k, v in problems.items()} == {}, "\n".join(
        r.failure_text() for r in result.results if r.scenario in problems
    )
    assert result.target_errors == {}
    identity = [r for r in result.results if r.scenario.startswith("split/backend-identity.")]
    assert len(identity) == 5 and {r.status for r in identity} == {"passed"}
    skipped = {r.scenario: r.skip_reasons for r in result.results if r.status == "skipped"}
    assert set(skipped) == {
        s.name
        for s in scenarios
        if s.name.startswith(("access/udp.", "admission/strict-references."))
    }
    assert {reason for reasons in skipped.values() for reason in reasons} == {
        "proxy: smictl proxy does not carry UDP",
        "proxy: the admission webhook has no strict mode (that is `smictl admit --strict`)",
    }
    paths = write_reports(result, tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["verdict"] == "PASS"
    rows = {r["group_version"]: r["capability"] for r in doc["summary"]}
    assert rows["split.smi-spec.io/v1alpha4"] == rows["split.smi-spec.io/v1alpha3"] == "full"


def test_cli_runs_the_webhook_target_and_writes_four_reports(tmp_path: Path) -> None:
    _needs_conformance_control_plane()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "--target",
            "webhook",
            "--scenario",
            "admission/*",
            "--scenario",
            "conversion/*",
            "--scenario",
            "modes/*",
            "--smi-version",
            "all",
            "--report",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"webhook: \d+ passed, 0 failed, \d+ skipped, 0 errors", out.stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "conformance-junit.xml",
        "conformance.html",
        "conformance.json",
        "conformance.md",
    ]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            # gunicorn may retitle itself; the environment still names the demo's directory
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen:
            found.append(int(proc.name))
    return found


def _workdir(output: str) -> str:
    m = re.search(r"state, certificates and logs in (\S+)", output)
    assert m, output
    return m.group(1)


def test_demo_shows_allowed_denied_and_split_traffic_and_cleans_up() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conformance.demo", "--duration", "8", "--rate", "10", "--plain"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    final = text[text.rindex("(final)") :]
    assert re.search(r"frontend -> catalog GET /products/42\s+[1-9]\d*\s+0\s", final)
    assert re.search(r"intruder -> payments POST /charge\s+0\s+[1-9]\d*\s", final)
    admin = re.search(r"frontend -> payments GET /admin/stats\s+(\d+)\s+(\d+)\s", final)
    assert admin and int(admin.group(1)) > 0 and int(admin.group(2)) > 0  # allowed, then locked
    assert "apply changes/1-jump-to-v2.yaml DENIED: [canary-step]" in text
    assert "configured catalog-v1 50%  catalog-v2 50%" in final
    assert "(seen as shop/frontend)" in final
    assert _processes_mentioning(_workdir(text)) == []


def test_demo_interrupted_stops_every_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.demo", "--duration", "120", "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "applied 30-trafficsplit.yaml" in line:
            break
    workdir = _workdir("".join(lines))
    assert _processes_mentioning(workdir), "the demo should be running its servers"
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Fail with the demo's stacks (it registers faulthandler on SIGUSR1), and leave nothing
        # running for the tests after this one.
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        for pid in [proc.pid, *_processes_mentioning(workdir)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
        pytest.fail("the demo did not stop within 60 s of SIGINT:\n" + rest[-6000:])
    assert proc.returncode == 130, "".join(lines) + rest  # 128 + SIGINT, as `conformance run`
    assert "interrupted" in rest and "stopping every process" in rest
    assert _processes_mentioning(workdir) == []
