"""`smictl policy test`: run every `test_*` rule of the policies' `*_test.rego`, like `opa test`.

A test is a top-level rule whose name starts with `test_`, in any module, indented or not; it
passes when it is defined and not false (`todo_test_*` rules are reported as skipped). Rules
of one name in one package are separate tests, named as `opa test` names them (`test_x`,
`test_x#01`, `test_x#02`): each is compiled under a name of its own (`test_x__01`, or
`test_x___01` when the package has a rule or import of that name), so a failing one is not
hidden by a passing one of the same name (regopy would take them as one rule, true when any
is). All
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
from smi.policy.modules import COMPAT_NAME, RegoModule, import_names
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
    entrypoint: str  # pkg/path/test_x (pkg/path/test_x__01: the second rule named test_x)
    module: str
    line: int
    shown: str = ""  # the rule as `opa test` names it when not as compiled: test_x#01

    @property
    def name(self) -> str:
        """How `opa test` names a test: data.pkg.path.test_x (data.pkg.path.test_x#01)."""
        package, rule = self.entrypoint.rsplit("/", 1)
        return "data." + package.replace("/", ".") + "." + (self.shown or rule)

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


@dataclass(frozen=True, slots=True)
class _TestRule:
    module: int  # index into the modules
    offset: int
    name: str
    ordinal: int  # 0 for the first rule of its name in its package, then 1, 2, ...
    compiled: str  # the name it is compiled under: `name`, or one no rule of the package has


def _test_rules(modules: Sequence[RegoModule]) -> list[_TestRule]:
    """Every rule whose name starts with `test_` (or `todo_test_`), at any indentation (Rego
    has no significant indentation), outside brackets, numbered per package and name."""
    out: list[_TestRule] = []
    seen: dict[tuple[str, str], int] = {}
    taken = _names_by_package(modules)
    for index, m in enumerate(modules):
        code = blanked(m.source)
        for at in rule_starts(code, indented=True):
            word = IDENT.match(code, at)
            if word is None or not _TEST_NAME.fullmatch(word.group()):
                continue
            key = (m.package, word.group())
            ordinal = seen.get(key, 0)
            seen[key] = ordinal + 1
            compiled = _unused_name(word.group(), ordinal, taken[m.package])
            out.append(_TestRule(index, at, word.group(), ordinal, compiled))
    return out


def _names_by_package(modules: Sequence[RegoModule]) -> dict[str, set[str]]:
    """Per package, every name a rule or an import of its modules takes (a word that starts a
    rule, the name after `default`, an import's name): what a renamed test must not be."""
    out: dict[str, set[str]] = {}
    for m in modules:
        code = blanked(m.source)
        names = out.setdefault(m.package, set())
        names.update(name for name, _ in import_names(code, m.source))
        for at in rule_starts(code, indented=True):
            word = IDENT.match(code, at)
            if word is not None and word.group() == "default":
                word = IDENT.search(code, word.end())
            if word is not None:
                names.add(word.group())
    return out


def _unused_name(name: str, ordinal: int, taken: set[str]) -> str:
    """`name` for the first rule of its name, else `name__01` (`name___01`, ... while a rule
    of the package has that name: `test_x__01` written by the user merged with the renamed
    second `test_x`, and one result stood for both); the name chosen is taken from then on."""
    if ordinal == 0:
        return name
    underscores = 2
    while (compiled := f"{name}{'_' * underscores}{ordinal:02d}") in taken:
        underscores += 1
    taken.add(compiled)
    return compiled


def discover(modules: Sequence[RegoModule]) -> list[TestCase]:
    """Every test rule, in file then line order; rules of one name in one package each once,
    as `opa test` runs them (test_x, test_x#01, ...)."""
    out: list[TestCase] = []
    for rule in _test_rules(modules):
        m = modules[rule.module]
        line = m.source.count("\n", 0, rule.offset) + 1
        shown = f"{rule.name}#{rule.ordinal:02d}" if rule.ordinal else ""
        out.append(TestCase(f"{m.package_path}/{rule.compiled}", m.name, line, shown))
    return out


def numbered(modules: Sequence[RegoModule]) -> list[RegoModule]:
    """`modules` with the second and later test rules of a name in a package renamed as
    `discover` compiles them (`test_x__01`), so that each is a rule of its own (lines kept)."""
    renamed: dict[int, list[_TestRule]] = {}
    for rule in _test_rules(modules):
        if rule.ordinal:
            renamed.setdefault(rule.module, []).append(rule)
    out = list(modules)
    for index, rules in renamed.items():
        source, parts, last = modules[index].source, [], 0
        for rule in rules:
            parts += [source[last : rule.offset], rule.compiled]
            last = rule.offset + len(rule.name)
        out[index] = replace(modules[index], source="".join(parts) + source[last:])
    return out


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
    ctx = _Context(modules=numbered(modules), data=dict(data or {}), timeout=timeout)
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
        # (smictl's compat module is no policy of the user's: its bodies are not counted)
        policies = [m for m in self.modules if not m.is_test and m.name != COMPAT_NAME]
        bodies = [b for m in policies for b in find_bodies(m.name, m.source)]
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
