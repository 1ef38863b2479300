"""Markdown: the summary per SMI group/version (passed / failed / skipped / capability), the
table per behaviour, then every failure with what was expected and what happened, and the
reasons for skips. Meant to be pasted into a README or a pull request."""

from __future__ import annotations

from collections import defaultdict

from conformance.results import RunResult, ScenarioResult

_BADGE = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭ skipped", "error": "💥 error"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(run: RunResult) -> str:
    out = [
        "# SMI conformance report",
        "",
        f"smictl {run.version or '(unknown)'} · started {run.started} · "
        f"{run.seconds:.1f} s · targets: {', '.join(run.targets)}",
        "",
        "Selection: " + ", ".join(f"{k} `{v}`" for k, v in run.selection.items()),
        "",
        f"**Result: {'PASS' if run.ok else 'FAIL'}** — "
        + "; ".join(
            f"{t}: " + ", ".join(f"{n} {s}" for s, n in sorted(run.counts(t).items()))
            for t in run.targets
        ),
        "",
    ]
    if run.target_errors:
        out += ["## Targets that did not start", ""]
        out += [f"- **{t}**: {_cell(e)}" for t, e in run.target_errors.items()]
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
            f"| {target} | {cap} | {c['passed']} | {c['failed'] + c['error']} | {c['skipped']} |"
        )
    return [*lines, ""]


def _failures(run: RunResult) -> list[str]:
    bad = [r for r in run.results if r.status in ("failed", "error")]
    lines = ["## Failures", ""]
    if not bad:
        return [*lines, "None.", ""]
    for r in bad:
        lines += [f"### {r.target} · `{r.scenario}`", "", _cell(r.description), ""]
        if r.error:
            lines += [f"- {_cell(r.error)}"]
        for s in r.steps:
            if s.status not in ("failed", "error"):
                continue
            lines.append(f"- step {s.number} ({s.kind}) *{_cell(s.title)}*: **{s.status}**")
            lines += [
                f"  - {_cell(c.what)}: expected `{_cell(c.expected)}`, got `{_cell(c.got)}`"
                for c in s.failures
            ]
            if s.reason:
                lines.append(f"  - {_cell(s.reason)}")
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
            f"- {_cell(reason)} — {len(rs)} scenario(s): "
            + ", ".join(f"`{r.scenario}`" for r in rs[:8])
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
            f"| `{n}` | "
            + " | ".join(_BADGE.get(cell.get((n, t), ""), "—") for t in run.targets)
            + " |"
        )
    return [*lines, ""]
