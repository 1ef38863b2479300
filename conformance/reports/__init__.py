"""The four report formats of a conformance run: JUnit XML (for CI), JSON (everything, for
machines), Markdown (for a README or a pull request) and one self-contained HTML page (for a
vendor to publish). All are rendered from the same `RunResult`.
"""

from __future__ import annotations

import json
from pathlib import Path

from conformance.reports.html import render_html
from conformance.reports.junit import render_junit
from conformance.reports.markdown import render_markdown
from conformance.results import RunResult

FILES = {
    "junit": "conformance-junit.xml",
    "json": "conformance.json",
    "markdown": "conformance.md",
    "html": "conformance.html",
}


def render_json(run: RunResult) -> str:
    return json.dumps(run.to_json(), indent=2, sort_keys=False) + "\n"


def write_reports(run: RunResult, directory: Path) -> dict[str, Path]:
    """Write all four reports into `directory` (created if needed); returns format -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = {
        "junit": render_junit(run),
        "json": render_json(run),
        "markdown": render_markdown(run),
        "html": render_html(run),
    }
    out = {}
    for fmt, text in texts.items():
        path = directory / FILES[fmt]
        path.write_text(text, encoding="utf-8")
        out[fmt] = path
    return out


__all__ = [
    "FILES",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "write_reports",
]
