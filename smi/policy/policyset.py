"""A loaded set of admission policies: their METADATA plus the engine that evaluates them.

`PolicySet.load(dirs)` reads the shipped policies (`policies/admission`, unless
`include_shipped=False`) and every directory given, checks the whole set in a child process, and
builds one bundle in this process (or points at a remote OPA). `evaluate(...)` runs every policy
that applies to the object's kind and returns one `PolicyDecision` per policy: violations, or the
error that made the policy fail (the caller fails closed on it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smi.errors import Diagnostic, LoadError, PolicyError
from smi.policy import engine as engine_mod
from smi.policy.engine import Engine, EvalOutcome, Violation
from smi.policy.modules import PolicyInfo, RegoModule, policies_of, read_modules
from smi.sources import non_json_number, read_documents, read_file
from smi.yamlpos import format_path

if TYPE_CHECKING:
    from smi.policy.remote import RemoteOPA


ADMISSION_BUDGET = 2.5  # seconds for all the policies of one admission, see PolicySet.budget


def shipped_dir() -> Path:
    """Where the policies that ship with smictl live (package data of `policies`)."""
    import policies

    return policies.ADMISSION


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """What one policy said about one object."""

    policy: PolicyInfo
    violations: tuple[Violation, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[PolicyInfo, ...] = ()
    engine: Engine | None = None
    modules: tuple[RegoModule, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    # Seconds for all the policies of one admission (each also has its own limit, the
    # engine's timeout): well within the webhook's timeout (the chart's 3 s, Kubernetes' 10 s).
    budget: float = ADMISSION_BUDGET

    @classmethod
    def load(
        cls,
        dirs: Sequence[str | Path] = (),
        *,
        include_shipped: bool = True,
        parameters: Mapping[str, Any] | None = None,
        remote: str | None = None,
        remote_ca: Path | None = None,
        remote_token: str | None = None,
    ) -> PolicySet:
        """Read, check and compile the policies; raises PolicyError (one line per problem).
        `remote`: an OPA Data API to evaluate on, its TLS verified against `remote_ca` (else
        the system's CAs), asked with `remote_token` as a bearer token when given."""
        roots: list[str | Path] = [shipped_dir()] if include_shipped else []
        roots.extend(dirs)
        modules = tuple(m for m in read_modules(roots) if not m.is_test)
        return cls.from_modules(
            modules,
            parameters=parameters or {},
            remote=remote,
            remote_ca=remote_ca,
            remote_token=remote_token,
        )

    @classmethod
    def from_modules(
        cls,
        modules: Sequence[RegoModule],
        *,
        parameters: Mapping[str, Any] | None = None,
        remote: str | None = None,
        remote_ca: Path | None = None,
        remote_token: str | None = None,
    ) -> PolicySet:
        params = dict(parameters or {})
        infos = tuple(policies_of(modules))
        if not infos:
            return cls(modules=tuple(modules), parameters=params)
        engine: Engine
        if remote is not None:
            from smi.policy.remote import RemoteOPA

            engine = RemoteOPA(remote, ca_file=remote_ca, token=remote_token)
            _require_remote_packages(engine, infos)
        else:
            engine = engine_mod.EmbeddedEngine(
                modules, entrypoints=[p.entrypoint for p in infos], data={"parameters": params}
            )
        return cls(policies=infos, engine=engine, modules=tuple(modules), parameters=params)

    def applicable(self, kind: str) -> list[PolicyInfo]:
        return [p for p in self.policies if p.applies_to(kind)]

    def evaluate(
        self, *, kind: str, input_for: Callable[[Collection[str]], Mapping[str, Any]]
    ) -> list[PolicyDecision]:
        """Evaluate the policies for `kind`; `input_for(inventory_kinds)` builds the input.

        Policies that ask for the same inventory kinds share one input document (building the
        document is most of the cost of an evaluation). Each policy has its own time limit and
        all of them together `budget` seconds, which every `deny` policy gets first: the `warn`
        policies run after them (on the same documents, in reverse group order so that the
        evaluator still holds the last one), so a slow warning can never make a deny policy
        fail, and the policies of an admission take at most the budget however many are slow
        (a review waiting for its webhook worker waits on top of that: docs/policy-input.md).
        """
        deadline = time.monotonic() + self.budget
        groups: dict[tuple[str, ...], list[PolicyInfo]] = {}
        for p in self.applicable(kind):
            groups.setdefault(tuple(sorted(p.inventory)), []).append(p)
        docs: dict[tuple[str, ...], Mapping[str, Any]] = {}
        keys = {inventory_kinds: object() for inventory_kinds in groups}
        # The deny groups in any order (all of them come first), those with warn policies
        # last: the last deny group is then the first warn group, and the two are one request.
        warned = {k for k, ps in groups.items() if any(p.enforcement == "warn" for p in ps)}
        denied = [k for k in groups if k not in warned] + [k for k in groups if k in warned]
        order = [(k, "deny") for k in denied] + [(k, "warn") for k in reversed(denied)]
        # Consecutive steps on the same document are one request to the evaluator: it answers
        # entrypoint by entrypoint, each on its own clock, so the order and every deadline are
        # as if asked apart, and a review with one document costs one round trip, not two
        # (measured: two cost /validate 1.40 ms of server CPU against 0.84, bench_webhook).
        batches: list[tuple[tuple[str, ...], list[PolicyInfo]]] = []
        for inventory_kinds, enforcement in order:
            group = [p for p in groups[inventory_kinds] if p.enforcement == enforcement]
            if not group:
                continue
            if batches and batches[-1][0] == inventory_kinds:
                batches[-1][1].extend(group)
            else:
                batches.append((inventory_kinds, group))
        decisions: list[PolicyDecision] = []
        for inventory_kinds, batch in batches:
            if inventory_kinds not in docs:
                docs[inventory_kinds] = input_for(inventory_kinds)
            outcomes = self._evaluate_paths(
                [p.entrypoint for p in batch],
                docs[inventory_kinds],
                deadline=deadline,
                key=keys[inventory_kinds],
            )
            for p, outcome in zip(batch, outcomes, strict=True):
                decisions.append(PolicyDecision(p, outcome.violations, outcome.error))
        return sorted(decisions, key=lambda d: d.policy.name)

    def data_api(self, path: str, input_doc: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """What an OPA Data API answers to `POST /v1/data/<path>` with `{"input": input_doc}`:
        (200, {"result": [violations]}) for a policy's `<package path>/violation`,
        (200, {"result": {"violation": [violations]}}) for its `<package path>`, (200, {})
        for any other path (an undefined document), (500, OPA's error shape) when the policy
        fails to evaluate. The webhook's Data API and the tests' stand-in serve this."""
        path = path.strip("/")
        package = next((p for p in self.policies if p.package.replace(".", "/") == path), None)
        if package is not None and self.engine is not None:  # the package, as OPA answers it
            status, body = self.data_api(package.entrypoint, input_doc)
            if status == 200:
                body = {"result": {"violation": body["result"]}}
            return status, body
        if self.engine is None or path not in {p.entrypoint for p in self.policies}:
            return 200, {}
        [outcome] = self._evaluate_paths([path], input_doc)
        if outcome.error is not None:
            return 500, {"code": "internal_error", "message": outcome.error}
        result = [{"msg": v.msg, "path": v.path, "details": v.details} for v in outcome.violations]
        return 200, {"result": result}

    def _evaluate_paths(
        self,
        paths: Sequence[str],
        doc: Mapping[str, Any],
        *,
        deadline: float | None = None,
        key: object | None = None,
    ) -> list[EvalOutcome]:
        if self.engine is None:
            return [EvalOutcome() for _ in paths]
        try:
            if isinstance(self.engine, engine_mod.EmbeddedEngine):
                return self.engine.evaluate(paths, doc, deadline=deadline, input_key=key)
            return self.engine.evaluate(paths, doc)
        except Exception as exc:  # the engine must never take the admission chain down
            return [EvalOutcome(error=f"{type(exc).__name__}: {exc}") for _ in paths]


def _require_remote_packages(engine: RemoteOPA, infos: Sequence[PolicyInfo]) -> None:
    """Refuse a remote OPA that lacks one of the policies: it would answer `{}` (undefined, no
    violation) for every object that policy denies."""
    from smi.policy.remote import UNREACHABLE

    missing = set(engine.missing_packages([p.package for p in infos]))
    if missing:
        engine.close()
        raise PolicyError(
            [
                Diagnostic(
                    code=UNREACHABLE,
                    message=f"the OPA at {engine.url} does not hold package {p.package} "
                    "(undefined there, so it would admit everything this policy denies): "
                    "load the same policies on that server",
                    file=p.file,
                    line=p.line,
                )
                for p in infos
                if p.package in missing
            ]
        )


def read_parameters(path: str | Path) -> dict[str, Any]:
    """`--parameters FILE`: a YAML or JSON mapping that becomes `data.parameters`.

    Read as manifests are (`smi.sources`: bounded size, depth and aliases counted as
    expanded, no Python tags or duplicate keys): `yaml.safe_load` let a billion-laughs file
    through as a structure that took the engine minutes to serialise, and a 5000-digit number
    or `/dev/zero` end as internal errors."""
    name, text, problem = read_file(str(path))
    if problem is not None:
        raise PolicyError.of(
            "SMI5004",
            f"cannot read policy parameters: {problem.message.removeprefix('cannot read: ')}",
            file=name,
        )
    try:
        docs = read_documents(text, filename=name)
    except LoadError as exc:
        first = exc.diagnostics[0]
        raise PolicyError.of(
            "SMI5004",
            f"cannot read policy parameters: {first.message}",
            file=name,
            line=first.line,
        ) from exc
    if all(doc.value is None for doc in docs):
        # It was taken as `{}`: a step that failed quietly and left the file empty had every
        # policy fall back to its defaults. No parameters is no --parameters, or `{}`.
        raise PolicyError.of(
            "SMI5004",
            "policy parameters must be a mapping, and the file holds none (it is empty, "
            "comments only or null); for no parameters write {}",
            file=name,
        )
    doc = docs[0]
    if len(docs) > 1 or not isinstance(doc.value, dict):
        raise PolicyError.of("SMI5004", "policy parameters must be a mapping", file=name)
    # `.inf` or NaN reached the engine as data it cannot take, reported as a crash while
    # parsing the first shipped policy (SMI5002): say which line of this file holds it, as
    # `smictl apply` says for an object.
    found = non_json_number(doc.value, filename=name)
    if found is not None:
        at, message = found
        raise PolicyError.of(
            "SMI5004",
            message,
            path=format_path(at),
            file=name,
            line=doc.lines.line_of(at) if doc.lines is not None else None,
        )
    return doc.value
