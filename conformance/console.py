"""What `smictl conformance run` prints while it runs: one line per scenario (failures with
every expectation that did not hold), then the summary per SMI group/version."""

from __future__ import annotations

from typing import TextIO

from conformance.results import RunResult, ScenarioResult

_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "error": "ERR "}


class Console:
    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self._out = out
        self._quiet = quiet

    def _print(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def intro(self, *, targets: list[str], count: int) -> None:
        self._print(f"smictl conformance: {count} scenarios on {', '.join(targets)}")

    def scenario(self, r: ScenarioResult) -> None:
        if r.status in ("failed", "error"):
            self._print(f"{_MARK[r.status]} {r.target:<8} {r.scenario}")
            for line in r.failure_text().splitlines()[1:]:
                self._print(f"     {line}")
        elif not self._quiet:
            extra = f"  ({'; '.join(r.skip_reasons)})" if r.status == "skipped" else ""
            self._print(f"{_MARK[r.status]} {r.target:<8} {r.scenario}  {r.seconds:.2f}s{extra}")

    def outro(self, run: RunResult) -> None:
        for target, err in run.target_errors.items():
            self._print(f"ERR  {target}: the target did not start: {err}")
        self._print()
        self._print(
            f"{'target':<8} {'SMI group/version':<30} {'pass':>5} {'fail':>5} "
            f"{'skip':>5}  capability"
        )
        for row in run.summary():
            self._print(
                f"{row.target:<8} {row.group_version:<30} {row.passed:>5} "
                f"{row.failed:>5} {row.skipped:>5}  {row.capability}"
            )
        self._print()
        for t in run.targets:
            c = run.counts(t)
            self._print(
                f"{t}: {c['passed']} passed, {c['failed']} failed, "
                f"{c['skipped']} skipped, {c['error']} errors"
            )
        self._print(f"{'PASS' if run.ok else 'FAIL'} in {run.seconds:.1f} s")
