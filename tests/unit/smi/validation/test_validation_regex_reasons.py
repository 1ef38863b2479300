"""Why a regex is not RE2 (SMI2204) is one printable line: RE2's reasons quote the pattern
as written, and a line break in it would forge a line of its own wherever the diagnostic goes
(an admission answer, a CI annotation, `grep`)."""

from __future__ import annotations

import pytest
from validation_helpers import run_checks

from smi.validation.regex import re2_problem

# Line breaks of every reader (C0, NEL, the Unicode separators) and a terminal escape.
BREAKS = ["\n", "\r", "\t", "\x00", "\x1b", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", BREAKS)
def test_a_reason_shows_a_control_character_as_its_escape(char: str) -> None:
    reason = re2_problem(f"/a({char}spec.matches[0].methods: forged (SMI0000)")
    assert reason is not None and reason.isprintable()
    escape = repr(char)[1:-1]
    assert reason == f"missing ): /a({escape}spec.matches[0].methods: forged (SMI0000)"


def test_a_printable_reason_is_left_as_re2_wrote_it() -> None:
    # Letters beyond ASCII and backslashes stay as they are: only unprintable characters change.
    assert re2_problem("/café(b\\.") == "missing ): /café(b\\."


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ('pathRegex: "/a(\\nspec.matches[0].methods: forged"', "spec.matches[0].pathRegex"),
        ('headers: {x-a: "(\\Lforged"}', "spec.matches[0].headers.x-a"),
    ],
)
def test_the_diagnostic_of_a_regex_with_a_line_break_is_one_line(field: str, path: str) -> None:
    text = (
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\n"
        f"spec:\n  matches:\n  - name: a\n    {field}\n"
    )
    [d] = run_checks(text)
    assert (d.code, d.path) == ("SMI2204", path)
    assert d.message.isprintable(), d.message
    assert len(d.message.splitlines()) == 1
