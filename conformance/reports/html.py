"""One self-contained HTML page (inline CSS, no scripts, no external assets): the summary per
SMI group/version with capability badges, the per-behaviour table, and every scenario as a
collapsible block whose failed steps are open and list expected vs got."""

from __future__ import annotations

from html import escape

from conformance.results import Check, RunResult, ScenarioResult, StepResult

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2733;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
.meta{color:#5b6875}table{border-collapse:collapse;width:100%;margin:.6rem 0}
th,td{border:1px solid #dde3ea;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f6f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:4px;padding:0 .45rem;font-weight:600;font-size:12px}
.passed,.full{background:#d8f3dc;color:#1b5e20}.failed,.error,.none{background:#fde2e1;
color:#9b1c1c}.skipped,.partial{background:#fff3cd;color:#7a5a00}
.verdict{font-size:18px;font-weight:700}details{border:1px solid #dde3ea;border-radius:6px;
margin:.35rem 0;padding:.3rem .6rem}summary{cursor:pointer}code{font-size:12.5px}
.desc{color:#5b6875;margin:.3rem 0}.check-bad{color:#9b1c1c}.check-ok{color:#1b5e20}
"""


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


def render_html(run: RunResult) -> str:
    verdict = run.verdict
    badge = {"PASS": "passed", "FAIL": "failed", "NOTHING VERIFIED": "skipped"}[verdict]
    detail = run.verdict_detail()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>SMI conformance report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>SMI conformance report</h1>",
        f'<p class="meta">smictl {escape(run.version or "(unknown)")} · started '
        f"{escape(run.started)} · {run.seconds:.1f} s · targets: "
        f"{escape(', '.join(run.targets))} · selection: "
        + escape(", ".join(f"{k}={v}" for k, v in run.selection.items()))
        + "</p>",
        f'<p class="verdict">{_badge(badge)} {verdict}: '
        + escape(
            (f"{detail}; " if detail else "")
            + "; ".join(
                f"{t}: " + ", ".join(f"{n} {s}" for s, n in sorted(run.counts(t).items()))
                for t in run.targets
            )
        )
        + "</p>",
    ]
    if run.target_errors:
        parts.append("<h2>Targets that did not start</h2><ul>")
        parts += [f"<li><b>{escape(t)}</b>: {escape(e)}</li>" for t, e in run.target_errors.items()]
        parts.append("</ul>")
    parts += _summary(run) + _behaviours(run) + _scenarios(run)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _summary(run: RunResult) -> list[str]:
    rows = [
        f"<tr><td>{escape(r.target)}</td><td><code>{escape(r.group_version)}</code></td>"
        f'<td class="n">{r.passed}</td><td class="n">{r.failed}</td>'
        f'<td class="n">{r.skipped}</td><td>{_badge(r.capability)}</td></tr>'
        for r in run.summary()
    ]
    return [
        "<h2>Summary per SMI group and version</h2>",
        "<table><tr><th>Target</th><th>Group / version</th><th>Passed</th><th>Failed</th>"
        "<th>Skipped</th><th>Capability</th></tr>",
        *rows,
        "</table>",
        '<p class="meta">full = every scenario passed; partial = some passed, others failed or '
        "were skipped; none = none passed.</p>",
    ]


def _behaviours(run: RunResult) -> list[str]:
    rows = [
        f"<tr><td>{escape(t)}</td><td>{escape(cap)}</td><td class='n'>{c['passed']}</td>"
        f"<td class='n'>{c['failed'] + c['error']}</td><td class='n'>{c['skipped']}</td></tr>"
        for t, cap, c in run.by_capability()
    ]
    return [
        "<h2>Behaviours</h2>",
        "<table><tr><th>Target</th><th>Behaviour</th><th>Passed</th><th>Failed</th>"
        "<th>Skipped</th></tr>",
        *rows,
        "</table>",
    ]


def _scenarios(run: RunResult) -> list[str]:
    parts = ["<h2>Scenarios</h2>"]
    order = {"error": 0, "failed": 1, "skipped": 2, "passed": 3}
    for r in sorted(run.results, key=lambda r: (order[r.status], r.target, r.scenario)):
        parts.append(_scenario(r))
    return parts


def _scenario(r: ScenarioResult) -> str:
    open_attr = " open" if r.status in ("failed", "error") else ""
    head = (
        f"<summary>{_badge(r.status)} <b>{escape(r.target)}</b> · "
        f"<code>{escape(r.scenario)}</code> · {r.seconds:.2f} s</summary>"
    )
    body = [
        f'<p class="desc">{escape(r.description)}</p>',
        f'<p class="meta">SMI: {escape(", ".join(r.smi_versions))} · behaviour: '
        f"{escape(r.capability)} · decisions: {escape(', '.join(r.decisions) or '-')}</p>",
    ]
    if r.error:
        body.append(f'<p class="check-bad">{escape(r.error)}</p>')
    body.append("<table><tr><th>#</th><th>Step</th><th>Status</th><th>Checks</th></tr>")
    body += [_step(s) for s in r.steps]
    body.append("</table>")
    return f"<details{open_attr}>{head}{''.join(body)}</details>"


def _check_class(c: Check) -> str:
    return "skipped" if c.skipped else "check-ok" if c.ok else "check-bad"


def _step(s: StepResult) -> str:
    checks = [
        f'<div class="{_check_class(c)}">{escape(c.what)}: expected '
        f"<code>{escape(c.expected)}</code>, got <code>{escape(c.got)}</code></div>"
        for c in s.checks
    ]
    if s.reason:
        checks.append(f"<div>{escape(s.reason)}</div>")
    return (
        f"<tr><td>{s.number}</td><td>{escape(s.kind)}: {escape(s.title)}</td>"
        f"<td>{_badge(s.status)}</td><td>{''.join(checks)}</td></tr>"
    )
