"""`smictl policy test` machinery: opa-test semantics, refusals, crash isolation, coverage."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from smi.errors import PolicyError
from smi.policy import rego_errors, sandbox, testing
from smi.policy.coverage import blank_comments, find_bodies
from smi.policy.modules import read_modules

POLICY = """\
package demo

import rego.v1

violation contains "big" if input.x > 10

violation contains "negative" if {
    input.x < 0
}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run(root: Path, **kwargs: bool) -> testing.TestReport:
    return testing.run(read_modules([root]), **kwargs)


def statuses(report: testing.TestReport) -> dict[str, str]:
    return {r.case.name: r.status for r in report.results}


def test_each_test_rule_passes_fails_errors_or_is_skipped(tmp_path: Path) -> None:
    tests = """\
    package demo_test

    import data.demo
    import rego.v1

    test_big if {
        demo.violation == {"big"} with input.x as 11
    }

    test_wrong if {
        demo.violation == {"big"} with input.x as 1
    }

    test_false := false

    conflicting(_) := 1
    conflicting(_) := 2

    test_conflict if conflicting(0) == 1

    todo_test_later if false
    """
    report = run(write(tmp_path, {"demo.rego": POLICY, "demo_test.rego": tests}))
    assert statuses(report) == {
        "data.demo_test.test_big": "PASS",
        "data.demo_test.test_wrong": "FAIL",
        "data.demo_test.test_false": "FAIL",
        "data.demo_test.test_conflict": "ERROR",
        "data.demo_test.todo_test_later": "SKIP",
    }
    assert not report.ok and report.count("PASS") == 1
    big = report.results[0]
    assert (big.case.module, big.case.line) == (str(tmp_path / "demo_test.rego"), 6)


def test_print_output_is_kept_per_test(tmp_path: Path) -> None:
    tests = 'package t\n\nimport rego.v1\n\ntest_loud if {\n\tprint("hello from the test")\n}\n'
    [result] = run(write(tmp_path, {"t_test.rego": tests})).results
    assert result.status == "PASS" and result.printed == "hello from the test\n"


def test_rules_of_one_name_are_separate_tests_named_as_opa_names_them(tmp_path: Path) -> None:
    """Two `test_big` rules were one rule to regopy, true when either was: a failing case
    under a passing one's name reported PASS 1/1. `opa test` runs each (test_big#01)."""
    tests = """\
    package demo_test

    import data.demo
    import rego.v1

    test_big if {
        demo.violation == {"big"} with input.x as 11
    }

    test_big if {
        demo.violation == {"big"} with input.x as 1
    }
    """
    more = "package demo_test\n\nimport rego.v1\n\ntest_big if data.demo.violation == set()\n"
    root = write(tmp_path, {"demo.rego": POLICY, "a_test.rego": tests, "b_test.rego": more})
    report = run(root)
    assert [(r.case.name, r.status, r.case.line) for r in report.results] == [
        ("data.demo_test.test_big", "PASS", 6),
        ("data.demo_test.test_big#01", "FAIL", 10),
        ("data.demo_test.test_big#02", "PASS", 5),
    ]
    assert not report.ok


def test_a_renamed_test_never_takes_the_name_of_a_rule_of_its_package(tmp_path: Path) -> None:
    """The second `test_x` was compiled as `test_x__01`: a user's `test_x__01` (in another
    module of the package) merged with it, and one PASS stood for both, the failing
    `test_x#01` hidden."""
    tests = """\
    package demo_test

    import rego.v1

    test_x if {
        1 == 1
    }

    test_x if {
        1 == 2
    }
    """
    more = "package demo_test\n\nimport rego.v1\n\ntest_x__01 if true\n"
    report = run(write(tmp_path, {"a_test.rego": tests, "b_test.rego": more}))
    assert [(r.case.name, r.status, r.case.line) for r in report.results] == [
        ("data.demo_test.test_x", "PASS", 5),
        ("data.demo_test.test_x#01", "FAIL", 9),
        ("data.demo_test.test_x__01", "PASS", 5),
    ]
    assert not report.ok


def test_an_indented_test_rule_is_found_and_a_local_named_like_one_is_not(
    tmp_path: Path,
) -> None:
    """Rego ignores indentation: an indented test ran nowhere ("no test_* rules found", exit
    0). A name at the start of a line inside a body is no rule."""
    tests = """\
    package demo_test

    import rego.v1

      test_indented if {
        test_local := 1
        test_local == 2
      }
    """
    report = run(write(tmp_path, {"demo.rego": POLICY, "demo_test.rego": tests}))
    assert [(r.case.name, r.status, r.case.line) for r in report.results] == [
        ("data.demo_test.test_indented", "FAIL", 5)
    ]


def test_with_input_as_is_refused_before_it_can_crash(tmp_path: Path) -> None:
    tests = "package t\n\ntest_x if {\n\tcount(data.demo.violation) == 0 with input as {}\n}\n"
    with pytest.raises(PolicyError) as info:
        run(write(tmp_path, {"demo.rego": POLICY, "t_test.rego": tests}))
    [d] = info.value.diagnostics
    assert (d.code, d.line) == ("SMI5008", 4)
    assert "with input.request as" in d.message


def test_with_a_rule_as_the_value_is_refused(tmp_path: Path) -> None:
    tests = (
        "package t\n\nfixture := 11\n\ntest_x if {\n"
        '\tdata.demo.violation == {"big"} with input.x as fixture\n}\n'
        "# a comment naming `with input as` is fine\n"
    )
    with pytest.raises(PolicyError) as info:
        run(write(tmp_path, {"demo.rego": POLICY, "t_test.rego": tests}))
    [d] = info.value.diagnostics
    assert d.line == 6 and "bind it to a local first" in d.message


def test_a_test_file_that_crashes_the_engine_only_fails_its_own_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refusal above would stop this file first; switched off, regopy really crashes
    # compiling it, and the runner must survive and still run the other file's tests.
    monkeypatch.setattr(testing, "lint", lambda modules: [])
    good = (
        "package good_test\n\nimport rego.v1\n\ntest_ok if {\n"
        '\tdata.demo.violation == {"big"} with input.x as 11\n}\n'
    )
    crashing = (
        "package bad_test\n\nimport rego.v1\n\ntest_boom if {\n"
        '\tcount(data.demo.violation) == 1 with input as {"x": 11}\n}\n'
    )
    files = {"demo.rego": POLICY, "good_test.rego": good, "bad_test.rego": crashing}
    report = run(write(tmp_path, files))
    assert statuses(report) == {
        "data.bad_test.test_boom": "ERROR",
        "data.good_test.test_ok": "PASS",
    }
    boom = next(r for r in report.results if r.status == "ERROR")
    assert boom.error is not None and "the Rego engine crashed (SIGABRT)" in boom.error


def test_a_policy_that_does_not_parse_is_one_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        run(write(tmp_path, {"demo.rego": "package demo\n\nx := [1,\n"}))
    assert (
        info.value.diagnostics[0].format() == f"{tmp_path}/demo.rego:3: this is unclosed (SMI5001)"
    )


def test_coverage_counts_bodies_whose_removal_a_test_notices(tmp_path: Path) -> None:
    tests = (
        "package t\n\nimport rego.v1\n\ntest_big if {\n"
        '\tdata.demo.violation == {"big"} with input.x as 11\n}\n'
    )
    report = run(write(tmp_path, {"demo.rego": POLICY, "t_test.rego": tests}), coverage=True)
    cov = report.coverage
    assert cov is not None
    assert [(b.line, b.rule) for b in cov.covered] == [(5, "violation")]
    assert [(b.line, b.rule) for b in cov.uncovered] == [(7, "violation")]
    assert cov.percent == 50.0


def test_bodies_are_found_and_disabled_without_moving_lines() -> None:
    source = textwrap.dedent("""\
        package p

        # if { not a body }
        default allow := false

        allow if input.ok # one line

        allow if {
            "}" != "{"
            input.admin
        } else := false

        names contains n if { some n in ["a", "b"] }
        """)
    bodies = find_bodies("p.rego", source)
    assert [(b.line, b.rule, b.inline_end is not None) for b in bodies] == [
        (6, "allow", True),
        (8, "allow", False),
        (13, "names", False),
    ]
    for b in bodies:
        disabled = b.disable(source)
        assert disabled.count("\n") == source.count("\n")
        assert "false;" in disabled.splitlines()[b.line - 1]
    assert bodies[0].disable(source).splitlines()[5] == "allow if { false; input.ok } # one line"


def test_comments_are_blanked_in_place() -> None:
    assert blank_comments('x := "#no" # yes\n') == 'x := "#no"      \n'


def test_function_arity_clash_across_packages_gets_a_hint(tmp_path: Path) -> None:
    # The state the shipped access policies were in while being written: helper functions of
    # one name with different arities in two test packages made rego-cpp 1.5.2 fail. (A copy
    # of them as they were then: the shipped ones have moved on, and the failure needs that
    # shape.)
    shutil.copytree(Path(__file__).parent / "data" / "arity_clash" / "access", tmp_path / "access")
    # (Without `sort` and `min`, which smictl now routes through its compat module for
    # regopy's text order of numbers: that module changes the shape the failure needs.)
    for name in ("allowed-source-namespaces", "sensitive-destination"):
        path = tmp_path / "access" / name / "policy.rego"
        path.write_text(
            path.read_text()
            .replace("sort(allowed(own))", "allowed(own)")
            .replace("sort(reasons)", "reasons")
            .replace("i := min({j |", "i := [j |")
            .replace("== ns})", "== ns][0]")
        )
    test = tmp_path / "access" / "sensitive-destination" / "policy_test.rego"
    test.write_text(
        test.read_text().replace("traffic_target(", "target(").replace("violations_for(", "check(")
    )
    policy = tmp_path / "access" / "allowed-source-namespaces" / "policy.rego"
    policy.write_text(
        policy.read_text().replace(
            'namespace := source.namespace\n\tnamespace != ""',
            "namespace := namespace_of(source, own)",
        )
        + '\nnamespace_of(subject, own) := subject.namespace if subject.namespace != ""\n'
        + '\nnamespace_of(subject, own) := own if subject.namespace == ""\n'
    )
    with pytest.raises(PolicyError) as info:
        run(tmp_path)
    [d] = info.value.diagnostics
    assert d.code == "SMI5002" and d.message.startswith("Unable to unify due to cycle")
    assert "different arities across packages: target/2" in d.message


def test_arity_clashes_are_listed_once() -> None:
    sources = {"a.rego": "f(x, y) := x if true\nf(x, y) := y if false\n", "b.rego": "f(x) := x\n"}
    assert rego_errors.arity_clashes(sources) == ["f/2 (a.rego) vs f/1 (b.rego)"]


def test_a_crash_while_a_test_runs_fails_that_test_and_the_rest_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No module is known to crash rego-cpp at evaluation time (only at compile time), so the
    # first child is replaced by a recording of one that died (SIGSEGV) inside the 2nd test.
    tests = "package t\n\nimport rego.v1\n\ntest_a if true\n\ntest_b if true\n\ntest_c if true\n"
    root = write(tmp_path, {"t_test.rego": tests})
    real_run = sandbox.run
    requests: list[list[str]] = []

    def fake_run(request: sandbox.SandboxRequest, *, timeout: float) -> sandbox.SandboxRun:
        requests.append([e for e, _ in request.evaluate])
        if len(requests) > 1:
            return real_run(request, timeout=timeout)
        ok = {"ok": True, "output": '{"expressions":[true]}', "seconds": 0.001, "printed": ""}
        events = (
            {"built": True, "log": ""},
            {"stage": "eval", "entrypoint": "t/test_a"},
            {"result": "t/test_a", **ok},
            {"stage": "eval", "entrypoint": "t/test_b"},
        )
        return sandbox.SandboxRun(events=events, returncode=-11, captured="")

    monkeypatch.setattr(sandbox, "run", fake_run)
    report = run(root)
    assert statuses(report) == {
        "data.t.test_a": "PASS",
        "data.t.test_b": "ERROR",
        "data.t.test_c": "PASS",
    }
    assert requests == [["t/test_a", "t/test_b", "t/test_c"], ["t/test_c"]]
    assert report.results[1].error == "the Rego engine crashed (SIGSEGV)"


def test_a_mutant_that_crashes_the_engine_is_reported_as_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tests = (
        "package t\n\nimport rego.v1\n\ntest_big if {\n"
        '\tdata.demo.violation == {"big"} with input.x as 11\n}\n'
    )
    root = write(tmp_path, {"demo.rego": POLICY, "t_test.rego": tests})
    real_run = sandbox.run
    variant_batches: list[int] = []

    def fake_run(request: sandbox.SandboxRequest, *, timeout: float) -> sandbox.SandboxRun:
        real = real_run(request, timeout=timeout)
        if not request.variants:
            return real
        variant_batches.append(len(request.variants))
        if len(variant_batches) > 1:
            return real
        # the first batch "dies" while running its first mutant
        events = tuple(
            e
            for e in real.events
            if "variant" not in e and e.get("stage") != "variant" and "done" not in e
        )
        events += ({"stage": "variant", "index": 0},)
        return sandbox.SandboxRun(events=events, returncode=-6, captured="")

    monkeypatch.setattr(sandbox, "run", fake_run)
    cov = run(root, coverage=True).coverage
    assert cov is not None
    assert [b.line for b in cov.unmeasured] == [5]
    assert [b.line for b in cov.uncovered] == [7]
    assert variant_batches == [2, 1]
    assert cov.total == 1  # unmeasured bodies count neither way
