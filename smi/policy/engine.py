"""The embedded Rego engine: regopy (rego-cpp) with policies compiled once into a bundle.

Decisions made here, in one place:

- **Compiled once.** All modules of a policy set go into one `Interpreter`, are built into one
  `Bundle` with an entrypoint per policy (`<package path>/violation`), and every evaluation is
  `query_bundle_entrypoint` (about 0.1 ms, against about 1.3 ms for an interpreted `query`, and
  the interpreted `query` answers `undefined` where OPA answers `false`).
- **Checked in a child first.** `check(...)` adds, builds and probes the modules in a child
  process (`smi.policy.sandbox`) because rego-cpp can abort the process on a broken module. Only
  a set that passed is built here. A parse error is SMI5001, a compile error SMI5002, each one
  line `file:line: message`.
- **Undefined is "no violation".** A `violation` that is undefined means the object is not in
  violation. A partial set with no matching body is the empty set, not undefined; undefined
  comes from a package or rule that does not exist (a policy file removed while its entrypoint
  is still asked for, a remote OPA that lacks it) or from a complete-rule `violation` whose
  bodies all fail. This is OPA's meaning (its Data API answers `{}`, which Gatekeeper treats as
  no violation); `false`, `null` and an empty list are no violation either.
- **Errors fail closed.** An evaluation error (a rule conflict, an unknown function, a result
  that is not a set of `{"msg": ...}`) never raises to the caller: it is an `EvalOutcome` with
  `error` set, which the admission chain turns into a denial (SMI5003) for `deny` policies and a
  warning for `warn` policies. Built-in errors (`1/0`, a type error) are *undefined*, as in OPA
  without `--strict-builtin-errors`, so that the embedded and remote engines agree, except
  where rego-cpp takes the body as true (a call's result assigned to a local nothing uses):
  that shape is refused at load (`smi.policy.unused_calls`), as is a variable a rule only
  reads and binds nowhere, which OPA refuses and rego-cpp leaves undefined
  (`smi.policy.unsafe_vars`), and a call to a built-in rego-cpp does not implement
  (`net.cidr_contains`, `http.send`: always undefined; `smi.policy.unsupported_calls`).
- **Rego v1.** regopy parses Rego v1 (`contains`, `if`, `some x in` need no import;
  `import rego.v1` is accepted). A v0 partial set, `violation[{"msg": m}] { ... }` or a
  helper's `blocked[name] { ... }`, parses as a partial *object* and would silently never
  deny; it is refused at load (SMI5002, `smi.policy.unsupported_calls`).

- **Bounded.** Evaluation runs in a long-lived child (`smi.policy.sandbox.EvalServer`), never
  in this process: regopy has no time or memory limit, and a policy that is slow or huge for
  some input (seen: 3M-element comprehension, 11 s and 2.4 GB; a set of 20,000 messages,
  164 s) would otherwise stall or exhaust the server. Each entrypoint has its own deadline;
  past it or the memory budget the child is killed, that policy's evaluation is an error
  (fail closed, SMI5003), and the entrypoints after it are evaluated in a fresh child, so one
  policy's stall is never another's failure (`PolicySet.budget` bounds the whole admission).

The child keeps one runtime interpreter and serves one evaluation at a time (a lock): rego-cpp
interpreters are not documented as thread-safe, and an evaluation takes well under a
millisecond (bench/results/rego.json).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from smi.errors import Diagnostic, PolicyError
from smi.policy import rego_errors, sandbox, unsafe_vars, unsupported_calls, unused_calls
from smi.policy.coverage import find_bodies
from smi.policy.modules import POLICY_KINDS, RegoModule, policies_of
from smi.policy.probe_inputs import probe_inputs

EVAL_FAILED = "SMI5003"
_MAX_MUTANTS = 200  # rule bodies tried to locate an error rego-cpp gives no line for


@dataclass(frozen=True, slots=True)
class Violation:
    """One element of a policy's `violation` set."""

    msg: str
    path: str = ""
    details: Any = None


@dataclass(frozen=True, slots=True)
class EvalOutcome:
    """What one policy said about one input: violations, or why it could not say."""

    violations: tuple[Violation, ...] = ()
    error: str | None = None


class Engine(Protocol):
    """Evaluates `violation` entrypoints (`pkg/path/violation`) against one input document."""

    def evaluate(
        self, entrypoints: Sequence[str], input_doc: Mapping[str, Any]
    ) -> list[EvalOutcome]: ...


def outcome_of_value(value: Any) -> EvalOutcome:
    """Interpret a `violation` value (already decoded from JSON)."""
    if value is None or value is False:
        return EvalOutcome()
    if isinstance(value, dict):
        return EvalOutcome(
            error="`violation` is an object, not a set: write "
            '`violation contains {"msg": msg} if { ... }` (Rego v1)'
        )
    if not isinstance(value, list):
        return EvalOutcome(error=f"`violation` must be a set, got {type(value).__name__}")
    out: list[Violation] = []
    for item in value:
        if isinstance(item, str):
            out.append(Violation(msg=item))
        elif isinstance(item, dict) and isinstance(item.get("msg"), str):
            path, msg = item.get("path"), item["msg"]
            if path is not None and not isinstance(path, str):
                # Said, not dropped: the policy's author would never learn the field is lost.
                shown = json.dumps(path)
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                msg = f"{msg} (the policy's `path` {shown} is not a string and was ignored)"
            out.append(
                Violation(
                    msg=msg,
                    path=path if isinstance(path, str) else "",
                    details=item.get("details"),
                )
            )
        else:
            return EvalOutcome(error=f'violation {json.dumps(item)} has no string "msg"')
    return EvalOutcome(violations=tuple(sorted(out, key=lambda v: (v.path, v.msg))))


def outcome_of_output(ok: bool, text: str) -> EvalOutcome:
    """Interpret regopy's output string for one entrypoint query."""
    stripped = text.strip()
    if not ok or stripped == "<error>":
        return EvalOutcome(error="evaluation failed (a rule conflict or a wrong built-in call)")
    if stripped.startswith("(error"):
        problems = rego_errors.parse_sexpr(stripped)
        detail = problems[0].message if problems and problems[0].message else "evaluation failed"
        return EvalOutcome(error=detail)
    if stripped == "undefined":
        return EvalOutcome()
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError:
        return EvalOutcome(
            error="the Rego engine returned malformed JSON (regopy 1.5.2 puts raw quotes around "
            "strings made by built-ins inside a sprintf with several arguments; build the "
            f"message with concat): {stripped[:80]}"
        )
    expressions = doc.get("expressions") if isinstance(doc, dict) else None
    if not expressions:
        return EvalOutcome()
    return outcome_of_value(expressions[0])


def check(
    modules: Sequence[RegoModule],
    *,
    entrypoints: Sequence[str],
    data: Mapping[str, Any],
    timeout: float = sandbox.DEFAULT_TIMEOUT,
    probe_timeout: float = sandbox.DEFAULT_PROBE_TIMEOUT,
) -> None:
    """Compile and probe the modules in a child; raise PolicyError with one line per problem.

    Each entrypoint is probed on an empty input within `probe_timeout` seconds: a set slower
    than that there would fail every admission (each gets `DEFAULT_EVAL_TIMEOUT`), and must
    not hold a server's start or reload for the whole `timeout`. Any error there refuses the
    set. Then each is probed on a representative object of each kind its policy applies to
    (`smi.policy.probe_inputs`), where an unknown function or a runaway recursion after the
    first `input.hub` reference shows: what OPA refuses when it compiles is refused here too.
    Other outcomes of those probes (a conflict, a stall, a crash for such an object) are left
    to run time, where each admission is bounded and fails closed on them."""
    refused = unused_calls.check(modules)
    if refused:
        raise PolicyError(refused)
    request = sandbox.SandboxRequest(
        modules=[(m.name, m.source) for m in modules],
        entrypoints=entrypoints,
        data=data,
        evaluate=[(e, {}) for e in entrypoints],
    )
    run = sandbox.run(request, timeout=timeout, eval_timeout=probe_timeout)
    stage = run.last_stage
    probing = str(stage.get("entrypoint", "")) if stage.get("stage") == "eval" else ""
    if run.returncode == sandbox.TIMED_OUT and probing:
        slow = (
            f"evaluating it on an empty input took longer than {probe_timeout:g}s and was "
            f"stopped (each admission gets {sandbox.DEFAULT_EVAL_TIMEOUT:g}s)"
        )
        raise PolicyError(_probe_diagnostic(probing, slow, modules=modules, code=EVAL_FAILED))
    raise_for_run(run, modules=modules)
    # (After the compile: a module that does not parse gets its parse error, not a guess read
    # from its tokens.)
    unsafe = [*unsupported_calls.check(modules), *unsafe_vars.check(modules)]
    if unsafe:
        raise PolicyError(unsafe)
    for event in run.results:
        outcome = outcome_of_output(bool(event["ok"]), str(event["output"]))
        if outcome.error is not None:
            entrypoint = str(event["result"])
            diag = _probe_diagnostic(entrypoint, outcome.error, modules=modules)
            if diag.line is None:
                diag = _located_by_mutation(diag, entrypoint=entrypoint, modules=modules, data=data)
            raise PolicyError(diag)
    crash = run.crash()
    if crash is not None and probing:  # died in a later probe than the first
        raise PolicyError(_probe_diagnostic(probing, f"{crash} while probing it", modules=modules))
    _probe_representatives(modules, entrypoints=entrypoints, data=data, timeout=timeout)


# What rego-cpp reports at evaluation and OPA refuses when it compiles.
_STATIC_ERRORS = ("Function not found", "Recursion detected")


def _probe_representatives(
    modules: Sequence[RegoModule],
    *,
    entrypoints: Sequence[str],
    data: Mapping[str, Any],
    timeout: float,
) -> None:
    probes = _probes(modules, entrypoints)
    if not probes:
        return
    request = sandbox.SandboxRequest(
        modules=[(m.name, m.source) for m in modules],
        entrypoints=entrypoints,
        data=data,
        evaluate=[(e, doc) for e, _, doc in probes],
    )
    # Each probe gets what an admission gets: a policy slow for such an object costs the load
    # at most that, once (the child is stopped there and the remaining probes skipped).
    run = sandbox.run(request, timeout=timeout, eval_timeout=sandbox.DEFAULT_EVAL_TIMEOUT)
    for event, (entrypoint, what, _) in zip(run.results, probes, strict=False):
        outcome = outcome_of_output(bool(event["ok"]), str(event["output"]))
        if outcome.error is not None and outcome.error.startswith(_STATIC_ERRORS):
            diag = _probe_diagnostic(entrypoint, outcome.error, modules=modules)
            raise PolicyError(replace(diag, message=f"{diag.message} (probed with {what})"))


def _probes(
    modules: Sequence[RegoModule], entrypoints: Sequence[str]
) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(entrypoint, which object, its input document) for every representative probe."""
    try:
        kinds = {p.entrypoint: p.kinds or POLICY_KINDS for p in policies_of(modules)}
    except PolicyError:  # the caller reports METADATA; probe every kind meanwhile
        kinds = {}
    return [
        (e, f"a representative {kind}", doc)
        for e in entrypoints
        for kind, doc in probe_inputs(kinds.get(e, POLICY_KINDS))
    ]


def _located_by_mutation(
    diag: Diagnostic,
    *,
    entrypoint: str,
    modules: Sequence[RegoModule],
    data: Mapping[str, Any],
) -> Diagnostic:
    """rego-cpp says only `<error>` for a rule conflict or a wrong built-in call: find the rule
    body of the policy's package without which the error goes away (one build per body, only
    on this error path), and point at it."""
    package = entrypoint.rsplit("/", 1)[0].replace("/", ".")
    own = [m for m in modules if m.package == package and not m.is_test]
    bodies = [b for m in own for b in find_bodies(m.name, m.source)]
    if not bodies or len(bodies) > _MAX_MUTANTS:
        return diag
    sources = {m.name: m.source for m in modules}
    request = sandbox.SandboxRequest(
        modules=list(sources.items()),
        entrypoints=[entrypoint],
        data=data,
        evaluate=[(entrypoint, {})],
        variants=[(b.module, b.disable(sources[b.module])) for b in bodies],
    )
    run = sandbox.run(request, timeout=sandbox.DEFAULT_TIMEOUT, eval_timeout=10.0)
    for index, body in enumerate(bodies):
        if run.variants.get(index) == []:  # without this body, the entrypoint evaluates
            where = f", in this body of rule `{body.rule}`"
            return replace(diag, message=diag.message + where, file=body.module, line=body.line)
    return diag


def raise_for_run(run: sandbox.SandboxRun, *, modules: Sequence[RegoModule]) -> None:
    """Raise the PolicyError a child's add/build failure or crash amounts to."""
    sources = {m.name: m.source for m in modules}
    error = run.error
    if error is not None:
        raise PolicyError(_stage_diagnostic(error, sources=sources))
    crash = run.crash()
    if crash is not None and not run.results:
        where = run.last_stage
        file = where.get("module") if where.get("stage") == "add" else None
        step = {"add": "parsing", "build": "compiling", "eval": "probing"}.get(
            str(where.get("stage")), "loading"
        )
        hint_file, hint_line = rego_errors.first_line_with("with input as", sources)
        if file is None and hint_file is not None:
            file, line = hint_file, hint_line
        else:
            file, line = file or (next(iter(sources)) if len(sources) == 1 else None), None
        names = ", ".join(sorted(sources)) if file is None else ""
        raise PolicyError(
            Diagnostic(
                code=rego_errors.COMPILE,
                message=f"{crash} while {step} {names or 'this module'}{_crash_hint(sources)}",
                file=file,
                line=line,
            )
        )


def _stage_diagnostic(error: Mapping[str, Any], *, sources: Mapping[str, str]) -> Diagnostic:
    diag = _first_problem(error, sources=sources)
    clashes = rego_errors.arity_clashes(sources) if "due to cycle" in diag.message else []
    if clashes:
        hint = (
            " (rego-cpp 1.5.2 confuses functions of one name with different arities across "
            f"packages: {'; '.join(clashes[:3])}; rename one)"
        )
        return Diagnostic(
            code=diag.code, message=diag.message + hint, file=diag.file, line=diag.line
        )
    return diag


def _first_problem(error: Mapping[str, Any], *, sources: Mapping[str, str]) -> Diagnostic:
    code = rego_errors.PARSE if error.get("error") == "add" else rego_errors.COMPILE
    from_log = rego_errors.diagnose_log(str(error.get("log", "")), sources=sources, code=code)
    message = str(error.get("message", ""))
    # The log names the spot rego-cpp means; the S-expression's first location is sometimes
    # only the rule that led there (seen: a caller in a test file for a cycle in a policy).
    if from_log is not None and from_log.line is not None:
        return from_log
    if message.strip():
        return rego_errors.diagnose_sexpr(
            message, sources=sources, code=code, fallback_file=error.get("module")
        )
    if from_log is not None:
        return from_log
    return Diagnostic(code=code, message="the Rego compiler rejected the policy set")


def _probe_diagnostic(
    entrypoint: str,
    error: str,
    *,
    modules: Sequence[RegoModule],
    code: str = rego_errors.COMPILE,
) -> Diagnostic:
    package = entrypoint.rsplit("/", 1)[0].replace("/", ".")
    owner = next((m for m in modules if m.package == package and not m.is_test), None)
    sources = {m.name: m.source for m in modules}
    file, line = rego_errors.locate_message(error, sources)
    if file is None and owner is not None:
        file = owner.name
    return Diagnostic(
        code=code,
        message=f"{entrypoint.replace('/', '.')}: {error}",
        file=file,
        line=line,
    )


def _crash_hint(sources: Mapping[str, str]) -> str:
    if any("with input as" in s for s in sources.values()):
        return (
            " (rego-cpp 1.5.2 crashes on `with input as {...}` over rules that call built-ins;"
            " write `with input.request as ...`, `with input.hub as ...` instead)"
        )
    return ""


class EmbeddedEngine:
    """regopy in a child process: one bundle, one runtime interpreter, bounded evaluations."""

    def __init__(
        self,
        modules: Sequence[RegoModule],
        *,
        entrypoints: Sequence[str],
        data: Mapping[str, Any],
        checked: bool = False,
        timeout: float = sandbox.DEFAULT_EVAL_TIMEOUT,
        memory_limit: int | None = None,
    ) -> None:
        if not checked:
            check(modules, entrypoints=entrypoints, data=data)
        self._entrypoints = frozenset(entrypoints)
        self._server = sandbox.EvalServer(
            sandbox.SandboxRequest(
                modules=[(m.name, m.source) for m in modules],
                entrypoints=list(entrypoints or ["__smictl__/none"]),
                data=dict(data),
            ),
            timeout=timeout,
            memory_limit=memory_limit,
        )
        self._server.start()

    def close(self) -> None:
        """Stop the evaluator child (it is also stopped when the engine is collected)."""
        self._server.close()

    def evaluate(
        self,
        entrypoints: Sequence[str],
        input_doc: Mapping[str, Any],
        *,
        deadline: float | None = None,
        input_key: object | None = None,
    ) -> list[EvalOutcome]:
        """One outcome per entrypoint. Each has its own time limit, so one slow or crashing
        policy fails alone; `deadline` and `input_key` as in `sandbox.EvalServer.evaluate`."""
        if not entrypoints:
            return []
        unknown = [e for e in entrypoints if e not in self._entrypoints]
        if unknown:
            raise ValueError(f"entrypoints not in the bundle: {unknown}")
        try:
            outputs = self._server.evaluate(
                entrypoints, input_doc, deadline=deadline, input_key=input_key
            )
        except (TypeError, ValueError) as exc:
            return [EvalOutcome(error=str(exc)) for _ in entrypoints]
        return [
            EvalOutcome(error=str(item)) if isinstance(item, sandbox.EvalFailed) else _outcome(item)
            for item in outputs
        ]


def _outcome(item: Any) -> EvalOutcome:
    if not isinstance(item, list) or len(item) != 3:
        return EvalOutcome(error="the Rego engine answered out of protocol")
    ok, text, error = item
    if isinstance(error, str):
        return EvalOutcome(error=error or "error")
    if not isinstance(text, str):
        return EvalOutcome(error="the Rego engine answered out of protocol")
    return outcome_of_output(bool(ok), text)
