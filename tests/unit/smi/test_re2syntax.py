"""`\\x{...}` (RE2's braced hex escape) outside a character class: pyre2 refused it ("not RE2
syntax: Backreferences not supported"), so a valid pathRegex was refused at admission and
could not be matched. Validation and matching now compile it as RE2 reads it."""

from __future__ import annotations

import pytest

from smi.compiler.ir.matching import compile_regex
from smi.re2syntax import re2_source
from smi.validation.regex import re2_problem


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        (r"/\x{41}$", "/A", "/B"),
        (r"/\x{e9}t\x{E9}$", "/été", "/ete"),
        (r"/\x{1F600}/.*", "/\U0001f600/x", "/x"),
        (r"/[\x{41}-\x{43}]+$", "/ABC", "/D"),
        (r"/\x{2e}$", "/.", "/a"),  # (a dot, escaped: not any character)
    ],
)
def test_braced_hex_escapes_are_re2(pattern: str, matches: str, misses: str) -> None:
    assert re2_problem(pattern) is None
    regex = compile_regex(pattern)
    assert regex.fullmatch(matches) and not regex.fullmatch(misses)


def test_an_escaped_backslash_before_x_is_left_as_written() -> None:
    """`\\\\x{41}` is a literal backslash, then `x` 41 times."""
    pattern = r"/\\x{41}$"
    assert re2_source(pattern) == pattern
    regex = compile_regex(pattern)
    assert regex.fullmatch("/\\" + "x" * 41) and not regex.fullmatch("/A")


def test_what_is_no_code_point_is_still_refused() -> None:
    assert re2_problem(r"/\x{110000}") is not None
    assert re2_problem(r"/\x{D800}") is not None
