"""regopy's error shapes (S-expression and log) become one-line diagnostics with file:line."""

from __future__ import annotations

from smi.policy import rego_errors

SOURCE = (
    'package a\nimport rego.v1\nviolation contains {"msg": m} if {\n  m := "x"\n  x := [1,2\n}\n'
)
# What regopy 1.5.2 raised for SOURCE (offset 78 is the `[` on line 5).
SEXPR = (
    "(rego-errorseq\n  (error 11:syntax.rego|78|1\n    (errormsg 16:this is unclosed)\n"
    "    (errorast |78|1))\n  (error 11:syntax.rego|58|2\n    (errormsg 16:this is unclosed)\n"
    "    (errorast |58|2)))\n"
)
LOG = (
    'Errors:\nInvalid arithmetic operator\n-- f.rego:3:11\n  x := "a" + }\n          ~\n\n'
    "-- \nwellformed_error\n~~~~~~~~~~~~~~~~\n\nPass collections failed with 1 error!\n"
)


def test_sexpr_locations_and_messages_are_read_by_length() -> None:
    problems = rego_errors.parse_sexpr(SEXPR)
    assert [(p.file, p.offset, p.message) for p in problems] == [
        ("syntax.rego", 78, "this is unclosed"),
        ("syntax.rego", 58, "this is unclosed"),
    ]


def test_sexpr_becomes_file_line_message_from_the_byte_offset() -> None:
    d = rego_errors.diagnose_sexpr(SEXPR, sources={"syntax.rego": SOURCE}, code="SMI5001")
    assert d.format() == "syntax.rego:5: this is unclosed (SMI5001)"


def test_message_with_a_colon_inside_is_kept_whole() -> None:
    text = "(error\n  (errormsg 23:Function not found: foo)\n  (errorast |1|1))"
    assert rego_errors.parse_sexpr(text)[0].message == "Function not found: foo"


def test_unlocated_unknown_function_is_found_in_the_sources() -> None:
    text = "(error\n  (errormsg 23:Function not found: foo)\n  (rego-errorcode))"
    sources = {"a.rego": "package a\n\nx := 1\ny := foo(1)\n", "b.rego": "package b\n"}
    d = rego_errors.diagnose_sexpr(text, sources=sources, code="SMI5002")
    assert (d.file, d.line, d.message) == ("a.rego", 4, "Function not found: foo")


def test_log_blocks_give_message_file_and_line() -> None:
    assert rego_errors.parse_log(LOG) == [("Invalid arithmetic operator", "f.rego", 3)]
    d = rego_errors.diagnose_log(LOG, sources={"f.rego": ""}, code="SMI5001")
    assert d is not None and d.format() == "f.rego:3: Invalid arithmetic operator (SMI5001)"


def test_unlocated_log_message_is_kept_without_a_line() -> None:
    log = "Errors:\nMultiple default rules\n-- \ncompreturn$5\n~~~~\n\nPass add_plans failed\n"
    assert rego_errors.parse_log(log) == [("Multiple default rules", None, None)]


def test_multiple_default_rules_point_at_the_second_default() -> None:
    sources = {"p.rego": "package p\ndefault x := 1\n\ndefault x := 2\n"}
    assert rego_errors.locate_message("Multiple default rules", sources) == ("p.rego", 4)


def test_garbage_still_gives_one_line() -> None:
    d = rego_errors.diagnose_sexpr("boom\nmore", sources={}, code="SMI5002", fallback_file="x")
    assert d.format() == "x: boom (SMI5002)"
