"""What `smictl conformance run` prints while it runs: one line per scenario (failures with
every expectation that did not hold), then the summary per SMI group/version.

Step titles, regexes and reasons come from scenario files and from the mesh under test; each is
printed through `visible`, so an escape sequence or a newline in one cannot recolour the
terminal or forge a line of the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from conformance.reports.text import visible
from conformance.results import RunResult, ScenarioResult
from smi.commands.validate import plural

_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "error": "ERR "}


class Console:
    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self._out = out
        self._quiet = quiet

    def _print(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def intro(self, *, targets: list[str], count: int) -> None:
        self._print(f"smictl conformance: {plural(count, 'scenario')} on {', '.join(targets)}")

    def scenario(self, r: ScenarioResult) -> None:
        name = visible(r.scenario)
        if r.status in ("failed", "error"):
            self._print(f"{_MARK[r.status]} {r.target:<8} {name}")
            for line in _failure_lines(r):
                self._print(f"     {line}")
        elif not self._quiet:
            reasons = "; ".join(visible(x) for x in r.skip_reasons)
            extra = f"  ({reasons})" if r.status == "skipped" else ""
            self._print(f"{_MARK[r.status]} {r.target:<8} {name}  {r.seconds:.2f}s{extra}")

    def outro(self, run: RunResult) -> None:
        """The summary, then the verdict as the last line."""
        self.summary(run)
        self.verdict(run)

    def summary(self, run: RunResult) -> None:
        """Target errors, the table per SMI group/version and the counts per target."""
        for target, err in run.target_errors.items():
            self._print(f"ERR  {target}: the target did not start: {visible(err)}")
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
                f"{c['skipped']} skipped, {plural(c['error'], 'error')}"
            )

    def verdict(self, run: RunResult) -> None:
        """The verdict line, the last one a run prints (after the report paths, if any)."""
        detail = run.verdict_detail()
        self._print(f"{run.verdict} in {run.seconds:.1f} s" + (f": {detail}" if detail else ""))


def _failure_lines(r: ScenarioResult) -> Iterator[str]:
    """`ScenarioResult.failure_text` without its first line, one field at a time made
    visible: joining first would let a newline inside an expectation start a line of its own.
    An error's own lines (a server's log tail) stay lines, each indented under its step."""
    for line in r.error.splitlines():
        yield f"  {visible(line)}"
    for s in r.steps:
        if s.status not in ("failed", "error"):
            continue
        yield f"  step {s.number} ({s.kind}) {visible(s.title)}: {s.status}"
        for c in s.failures:
            yield f"    {visible(c.what)}: expected {visible(c.expected)}, got {visible(c.got)}"
        for line in s.reason.splitlines():
            yield f"    {visible(line)}"
