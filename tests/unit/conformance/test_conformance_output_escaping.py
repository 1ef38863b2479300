"""Text from a scenario's author or the mesh under test (step names, descriptions, regexes,
reasons) reaches the terminal and conformance.md as text, never as terminal control sequences
or Markdown/HTML markup, the way the HTML and JUnit reports already treat it."""

from __future__ import annotations

import io
import re

import pytest

from conformance.console import Console
from conformance.reports import render_markdown
from conformance.results import Check, RunResult, ScenarioResult, StepResult

HOSTILE_TITLE = "<img src=x onerror=alert(2)> | step\x1b[2J"
HOSTILE_REGEX = "/<script>|\x07/"
HOSTILE_GOT = "source-not-allowed\r\nPASS inproc forged/line"


def _run() -> RunResult:
    step = StepResult(
        1,
        "request",
        HOSTILE_TITLE,
        "failed",
        (Check("deny reason", HOSTILE_REGEX, HOSTILE_GOT, ok=False),),
        reason="# heading\x1b]0;title\x07",
    )
    skipped = StepResult(0, "request", "UDP", "skipped", reason="proxy: no \x1b[31mUDP")
    results = [
        ScenarioResult(
            scenario="e/xss",
            target="inproc",
            description="<script>alert(1)</script> | pipe `tick` & amp \x1b[31m ctrl \x00 nul",
            capability="x|y<b>",
            smi_versions=("access.smi-spec.io/v1alpha3",),
            decisions=(),
            status="failed",
            steps=(step,),
        ),
        ScenarioResult(
            scenario="e/udp",
            target="inproc",
            description="d",
            capability="c",
            smi_versions=("access.smi-spec.io/v1alpha3",),
            decisions=(),
            status="skipped",
            steps=(skipped,),
        ),
    ]
    return RunResult(
        targets=["inproc"],
        results=results,
        started="now",
        version="0",
        selection={"scenario": "e/*`<i>"},
        target_errors={"inproc": "died <b>\x1b[0m"},
    )


@pytest.fixture
def run() -> RunResult:
    return _run()


def _printed(run: RunResult) -> str:
    out = io.StringIO()
    console = Console(out)
    for r in run.results:
        console.scenario(r)
    console.outro(run)
    return out.getvalue()


def test_console_shows_control_characters_as_escapes(run: RunResult) -> None:
    text = _printed(run)
    controls = [c for c in text if not c.isprintable() and c != "\n"]
    assert controls == []
    assert "step 2 (request) <img src=x onerror=alert(2)> | step\\x1b[2J: failed" in text
    assert "expected /<script>|\\x07/, got source-not-allowed\\r\\nPASS inproc forged/line" in text
    assert "(proxy: no \\x1b[31mUDP)" in text
    assert "the target did not start: died <b>\\x1b[0m" in text


def test_console_cannot_be_made_to_print_a_line_of_its_own(run: RunResult) -> None:
    lines = _printed(run).splitlines()
    assert not [x for x in lines if x.strip().startswith("PASS")]


def test_markdown_has_no_markup_or_control_characters_from_the_scenario(run: RunResult) -> None:
    text = render_markdown(run)
    assert [c for c in text if not c.isprintable() and c != "\n"] == []
    prose = re.sub(r"(`+).*?\1", "", text)  # inside code spans markup is literal
    assert re.findall(r"(?<!\\)<", prose.replace("\\\\", "")) == []  # every `<` is `\<`
    assert (
        "\\<script\\>alert(1)\\</script\\> \\| pipe \\`tick\\` \\& amp \\\\x1b\\[31m ctrl "
        "\\\\x00 nul"
    ) in text
    assert "| inproc | x\\|y\\<b\\> | 0 | 1 | 0 |" in text
    assert "- step 2 (request) *\\<img src=x onerror=alert(2)\\> \\| step\\\\x1b\\[2J*" in text
    # A regex and a reply stay verbatim inside code spans, where markup is literal.
    assert "expected `/<script>|\\x07/`, got `source-not-allowed\\r\\nPASS inproc forged/line`" in (
        text
    )
    assert "  - \\# heading\\\\x1b\\]0;title\\\\x07" in text
    assert "Selection: scenario ``e/*`<i>``" in text
    assert "- **inproc**: died \\<b\\>\\\\x1b\\[0m" in text


def test_markdown_renders_author_text_as_text(run: RunResult) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(render_markdown(run))
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<h1>heading" not in html  # a reason that starts with `#` is no heading
