"""Markdown: the summary per SMI group/version (passed / failed / skipped / capability), the
table per behaviour, then every failure with what was expected and what happened, and the
reasons for skips. Meant to be pasted into a README or a pull request.

Everything a scenario's author or the mesh wrote (descriptions, titles, regexes, reasons) goes
through `md_text` or `md_code`: a renderer passes raw HTML through, so a `<script>` in a step
name would otherwise run in the page a vendor publishes."""

from __future__ import annotations

from collections import defaultdict

from conformance.reports.text import md_code, md_text
from conformance.results import RunResult, ScenarioResult

_BADGE = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭ skipped", "error": "💥 error"}


def render_markdown(run: RunResult) -> str:
    out = [
        "# SMI conformance report",
        "",
        f"smictl {run.version or '(unknown)'} · started {run.started} · "
        f"{run.seconds:.1f} s · targets: {', '.join(run.targets)}",
        "",
        "Selection: " + ", ".join(f"{md_text(k)} {md_code(v)}" for k, v in run.selection.items()),
        "",
        f"**Result: {run.verdict}** — "
        + (f"{run.verdict_detail()}; " if run.verdict_detail() else "")
        + "; ".join(
            f"{t}: " + ", ".join(f"{n} {s}" for s, n in sorted(run.counts(t).items()))
            for t in run.targets
        ),
        "",
    ]
    if run.target_errors:
        out += ["## Targets that did not start", ""]
        out += [f"- **{md_text(t)}**: {md_text(e)}" for t, e in run.target_errors.items()]
        out.append("")
    out += _summary(run) + _behaviours(run) + _failures(run) + _skips(run) + _matrix(run)
    return "\n".join(out) + "\n"


def _summary(run: RunResult) -> list[str]:
    lines = [
        "## Summary per SMI group and version",
        "",
        "| Target | Group / version | Passed | Failed | Skipped | Capability |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in run.summary():
        lines.append(
            f"| {row.target} | `{row.group_version}` | {row.passed} | {row.failed} | "
            f"{row.skipped} | **{row.capability}** |"
        )
    lines += [
        "",
        "Capability: **full** = every scenario passed; **partial** = some passed, "
        "others failed or were skipped; **none** = none passed.",
        "",
    ]
    return lines


def _behaviours(run: RunResult) -> list[str]:
    lines = [
        "## Behaviours",
        "",
        "| Target | Behaviour | Passed | Failed | Skipped |",
        "|---|---|---:|---:|---:|",
    ]
    for target, cap, c in run.by_capability():
        lines.append(
            f"| {md_text(target)} | {md_text(cap)} | {c['passed']} | "
            f"{c['failed'] + c['error']} | {c['skipped']} |"
        )
    return [*lines, ""]


def _failures(run: RunResult) -> list[str]:
    bad = [r for r in run.results if r.status in ("failed", "error")]
    lines = ["## Failures", ""]
    if not bad:
        return [*lines, "None.", ""]
    for r in bad:
        lines += [
            f"### {md_text(r.target)} · {md_code(r.scenario)}",
            "",
            md_text(r.description),
            "",
        ]
        if r.error:
            lines += [f"- {md_text(r.error)}"]
        for s in r.steps:
            if s.status not in ("failed", "error"):
                continue
            lines.append(f"- step {s.number} ({s.kind}) *{md_text(s.title)}*: **{s.status}**")
            lines += [
                f"  - {md_text(c.what)}: expected {md_code(c.expected)}, got {md_code(c.got)}"
                for c in s.failures
            ]
            if s.reason:
                lines.append(f"  - {md_text(s.reason)}")
        lines.append("")
    return lines


def _skips(run: RunResult) -> list[str]:
    reasons: dict[str, list[ScenarioResult]] = defaultdict(list)
    for r in run.results:
        for reason in r.skip_reasons:
            reasons[reason].append(r)
    if not reasons:
        return []
    lines = ["## Skipped steps", ""]
    for reason, rs in sorted(reasons.items()):
        lines.append(
            f"- {md_text(reason)} — {len(rs)} scenario(s): "
            + ", ".join(md_code(r.scenario) for r in rs[:8])
            + (" …" if len(rs) > 8 else "")
        )
    return [*lines, ""]


def _matrix(run: RunResult) -> list[str]:
    names = sorted({r.scenario for r in run.results})
    cell = {(r.scenario, r.target): r.status for r in run.results}
    lines = [
        "## Every scenario",
        "",
        "| Scenario | " + " | ".join(run.targets) + " |",
        "|---|" + "---|" * len(run.targets),
    ]
    for n in names:
        lines.append(
            f"| {md_code(n, in_table=True)} | "
            + " | ".join(_BADGE.get(cell.get((n, t), ""), "—") for t in run.targets)
            + " |"
        )
    return [*lines, ""]
