"""`smictl policy test`: run every `test_*` rule of the policies' `*_test.rego`, like `opa test`.

A test is a top-level rule whose name starts with `test_`, in any module, indented or not; it
passes when it is defined and not false (`todo_test_*` rules are reported as skipped). All
modules under the given directories are compiled together, in a child process
(`smi.policy.sandbox`), because rego-cpp can crash on a module a user writes:

- a parse or compile error raises `PolicyError` (one line, file:line, SMI5001/SMI5002);
- a crash while compiling is narrowed down by compiling each test file on its own with the
  policy modules; the files that crash report ERROR for each of their tests;
- a crash while a test runs makes that test ERROR and the rest run in a fresh child.

Two regopy 1.5.2 behaviours would make tests silently wrong, so they are refused (SMI5008)
before anything runs: `with input as {...}` (crashes the engine over rules that call
built-ins; write `with input.request as ...`, `with input.hub as ...`), and
`with <target> as <rule>` where the value is a rule of the same module (regopy evaluates the
override as undefined; bind it to a local first: `x := rule` ... `with input.hub as x`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from smi.errors import Diagnostic, PolicyError
from smi.policy import engine, sandbox, unsafe_vars, unsupported_calls, unused_calls
from smi.policy._child import test_passed
from smi.policy.coverage import Body, blank_comments, blanked, find_bodies
from smi.policy.engine import outcome_of_output
from smi.policy.modules import RegoModule
from smi.policy.unused_calls import IDENT, rule_starts

TEST_FAILED = "SMI5007"
TEST_REFUSED = "SMI5008"

Status = Literal["PASS", "FAIL", "ERROR", "SKIP"]

_TEST_NAME = re.compile(r"(?:todo_)?test_\w+")
_WITH_INPUT = re.compile(r"\bwith\s+input\s+as\b")
_WITH_VALUE = re.compile(r"\bwith\s+[\w.\[\]\"]+\s+as\s+(?P<value>[A-Za-z_]\w*)(?![\w.\[(])")
_RULE_DEF = r"^{name}\b\s*(?::=|=|if\b|contains\b|\{{|\[)"


@dataclass(frozen=True, slots=True)
class TestCase:
    entrypoint: str  # pkg/path/test_x
    module: str
    line: int

    @property
    def name(self) -> str:
        """How `opa test` names a test: data.pkg.path.test_x."""
        return "data." + self.entrypoint.replace("/", ".")

    @property
    def skipped(self) -> bool:
        return self.entrypoint.rsplit("/", 1)[1].startswith("todo_")


@dataclass(frozen=True, slots=True)
class TestResult:
    case: TestCase
    status: Status
    seconds: float = 0.0
    printed: str = ""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Coverage:
    """Rule bodies whose removal some test notices, out of all bodies (see smi.policy.coverage)."""

    covered: tuple[Body, ...]
    uncovered: tuple[Body, ...]
    unmeasured: tuple[Body, ...] = ()

    @property
    def total(self) -> int:
        return len(self.covered) + len(self.uncovered)

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * len(self.covered) / self.total


@dataclass(frozen=True)
class TestReport:
    results: tuple[TestResult, ...]
    coverage: Coverage | None = None
    modules: tuple[str, ...] = field(default_factory=tuple)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return all(r.status in ("PASS", "SKIP") for r in self.results)


def discover(modules: Sequence[RegoModule]) -> list[TestCase]:
    """Every test rule, once per name and package, in file then line order."""
    seen: dict[str, TestCase] = {}
    for m in modules:
        code = blanked(m.source)
        # (Outside brackets, at any indentation: Rego has no significant indentation.)
        for at in rule_starts(code, indented=True):
            word = IDENT.match(code, at)
            if word is None or not _TEST_NAME.fullmatch(word.group()):
                continue
            entrypoint = f"{m.package_path}/{word.group()}"
            line = m.source.count("\n", 0, at) + 1
            seen.setdefault(entrypoint, TestCase(entrypoint, m.name, line))
    return list(seen.values())


def lint(modules: Sequence[RegoModule]) -> list[Diagnostic]:
    """Test constructs regopy 1.5.2 gets wrong (see the module docstring)."""
    out: list[Diagnostic] = []
    for m in modules:
        code = blank_comments(m.source)
        for hit in _WITH_INPUT.finditer(code):
            out.append(
                _refusal(
                    m,
                    hit.start(),
                    "`with input as ...` crashes regopy 1.5.2 over rules that call built-ins; "
                    "override parts instead: `with input.request as ...`, `with input.hub as ...`",
                )
            )
        for hit in _WITH_VALUE.finditer(code):
            value = hit.group("value")
            if value in ("true", "false", "null") or not re.search(
                _RULE_DEF.format(name=re.escape(value)), code, re.MULTILINE
            ):
                continue
            out.append(
                _refusal(
                    m,
                    hit.start(),
                    f"`with ... as {value}` names a rule, which regopy 1.5.2 evaluates as "
                    f"undefined; bind it to a local first (`x := {value}` ... `as x`)",
                )
            )
    return out


def _refusal(module: RegoModule, offset: int, message: str) -> Diagnostic:
    line = module.source.count("\n", 0, offset) + 1
    return Diagnostic(code=TEST_REFUSED, message=message, file=module.name, line=line)


def run(
    modules: Sequence[RegoModule],
    *,
    data: Mapping[str, Any] | None = None,
    coverage: bool = False,
    timeout: float = sandbox.DEFAULT_TIMEOUT,
) -> TestReport:
    """Run every test of `modules`; raise PolicyError for modules that do not compile."""
    problems = [*lint(modules), *unused_calls.check(modules)]
    if problems:
        raise PolicyError(problems)
    cases = discover(modules)
    runnable = [c for c in cases if not c.skipped]
    results = {c.entrypoint: TestResult(c, "SKIP") for c in cases if c.skipped}
    ctx = _Context(modules=list(modules), data=dict(data or {}), timeout=timeout)
    for result in ctx.run_cases(runnable):
        results[result.case.entrypoint] = result
    # (once they compiled: see `engine.check`)
    unsafe = [*unsupported_calls.check(modules), *unsafe_vars.check(modules)]
    if unsafe:
        raise PolicyError(unsafe)
    ordered = tuple(results[c.entrypoint] for c in cases)
    cov = ctx.coverage(ordered) if coverage else None
    return TestReport(results=ordered, coverage=cov, modules=tuple(m.name for m in modules))


@dataclass
class _Context:
    modules: list[RegoModule]
    data: dict[str, Any]
    timeout: float

    def request(
        self, modules: Sequence[RegoModule], cases: Sequence[TestCase], **extra: Any
    ) -> sandbox.SandboxRequest:
        return sandbox.SandboxRequest(
            modules=[(m.name, m.source) for m in modules],
            entrypoints=[c.entrypoint for c in cases] or ["__smictl__/none"],
            data=self.data,
            evaluate=[(c.entrypoint, {}) for c in cases],
            **extra,
        )

    def run_cases(self, cases: Sequence[TestCase]) -> list[TestResult]:
        first = sandbox.run(self.request(self.modules, cases), timeout=self.timeout)
        if first.error is not None:
            engine.raise_for_run(first, modules=self.modules)
        stage = first.last_stage.get("stage")
        if first.crash() and not first.results and stage in ("add", "build"):
            if stage == "build" and any(m.is_test for m in self.modules):
                return self._isolate_build_crash(cases, first)
            engine.raise_for_run(first, modules=self.modules)
        return self._collect(cases, first, self.modules)

    def _collect(
        self, cases: Sequence[TestCase], run: sandbox.SandboxRun, modules: Sequence[RegoModule]
    ) -> list[TestResult]:
        """Results of a run; after a crash mid-run, ERROR for the test that crashed and a fresh
        child for the tests after it (bounded: each round finishes at least one test)."""
        out: list[TestResult] = []
        remaining = list(cases)
        while remaining:
            by_entry = {str(e["result"]): e for e in run.results}
            for case in list(remaining):
                event = by_entry.get(case.entrypoint)
                if event is None:
                    break
                out.append(_result(case, event))
                remaining.remove(case)
            if not remaining:
                break
            crashed = remaining.pop(0)
            out.append(TestResult(crashed, "ERROR", error=run.crash() or "no result"))
            if remaining:
                run = sandbox.run(self.request(modules, remaining), timeout=self.timeout)
                if run.error is not None or (not run.results and run.crash()):
                    out.extend(TestResult(c, "ERROR", error=run.crash()) for c in remaining)
                    break
        return out

    def _isolate_build_crash(
        self, cases: Sequence[TestCase], crashed: sandbox.SandboxRun
    ) -> list[TestResult]:
        """Compiling everything crashed: try the policy modules with one test file at a time."""
        base = [m for m in self.modules if not m.is_test]
        out: list[TestResult] = []
        for test_module in (m for m in self.modules if m.is_test):
            mine = [c for c in cases if c.module == test_module.name]
            run = sandbox.run(self.request([*base, test_module], mine), timeout=self.timeout)
            if run.error is not None:
                engine.raise_for_run(run, modules=[*base, test_module])
            if run.crash() and not run.results:
                why = f"{run.crash()} compiling {test_module.name}"
                out.extend(TestResult(c, "ERROR", error=why) for c in mine)
                continue
            out.extend(self._collect(mine, run, [*base, test_module]))
        if not out:
            engine.raise_for_run(crashed, modules=self.modules)
        done = {r.case.entrypoint for r in out}
        why = crashed.crash() or "the Rego engine crashed"
        out.extend(TestResult(c, "ERROR", error=why) for c in cases if c.entrypoint not in done)
        return out

    def coverage(self, results: Sequence[TestResult]) -> Coverage:
        passing = [r.case for r in results if r.status == "PASS"]
        bodies = [b for m in self.modules if not m.is_test for b in find_bodies(m.name, m.source)]
        if not passing:
            return Coverage(covered=(), uncovered=tuple(bodies))
        sources = {m.name: m.source for m in self.modules}
        variants = [(b.module, b.disable(sources[b.module])) for b in bodies]
        covered: list[Body] = []
        uncovered: list[Body] = []
        unmeasured: list[Body] = []
        start = 0
        while start < len(bodies):  # a crash in one mutant costs one child, not the measurement
            run = sandbox.run(
                self.request(self.modules, passing, variants=variants[start:]),
                timeout=self.timeout,
            )
            outcomes = run.variants
            done = 0
            for offset, body in enumerate(bodies[start:]):
                failed = outcomes.get(offset, "missing")
                done = offset + 1
                if failed == "missing" or failed is None:
                    unmeasured.append(body)
                    if failed == "missing":
                        break
                    continue
                (covered if failed else uncovered).append(body)
            start += max(done, 1)
        return Coverage(tuple(covered), tuple(uncovered), tuple(unmeasured))


def _result(case: TestCase, event: Mapping[str, Any]) -> TestResult:
    ok, text = bool(event["ok"]), str(event["output"])
    seconds, printed = float(event.get("seconds", 0.0)), str(event.get("printed", ""))
    base = TestResult(case, "PASS", seconds=seconds, printed=printed)
    if test_passed(ok, text):
        return base
    outcome = outcome_of_output(ok, text)
    if outcome.error is not None and text.strip() not in ("undefined",):
        return replace(base, status="ERROR", error=outcome.error)
    return replace(base, status="FAIL")
