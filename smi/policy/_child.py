"""The child side of `smi.policy.sandbox`: load Rego modules into regopy in a process that may die.

rego-cpp 1.5.2 aborts or segfaults the whole process on some modules (for instance a test that
uses `with input as {...}` over a rule that calls a built-in), so policies are compiled (and
their tests run) here first. The parent reads one JSON event per line from this process's
original standard output; rego-cpp's own output (its error log, `print()` from policies) and a
crash message go to the capture file the parent names, so the parent sees them even after a
crash. Each event is written *before* the step it announces, so the last event says where a
crash happened.

Run as `python -m smi.policy._child CAPTURE_FILE` with the request as JSON on standard input:
`{"modules": [[name, source], ...], "data": {...}, "entrypoints": [...],
  "evaluate": [[entrypoint, input], ...], "variants": [[name, source], ...]}`.

`python -m smi.policy._child --serve` is the evaluator the embedded engine uses at run time
(`smi.policy.sandbox.EvalServer`): the first line on standard input is the build request
(`modules`, `entrypoints`, `data`), answered `{"ready": true}` (or `{"error": ...}`); then
every line `{"entrypoints": [...], "input": {...}}` is answered by one line per entrypoint,
`{"output": [ok, text, error]}`, written as soon as that entrypoint is evaluated, so that the
parent can give each its own deadline and knows which one a stall or crash belongs to (or by
one line `{"failure": why}` for an input regopy refused). A request without `input` evaluates
on the input of the request before it (the parent asks warn policies after deny policies on
one document without handing it over twice). rego-cpp's own output goes to /dev/null there.

In both modes the child caps its own address space (`SMICTL_REGO_MEMORY_LIMIT` bytes on top of
what the interpreter reserved at import: snmalloc reserves 256 GiB of address space up front,
so the limit must be set after `import regopy`), so a policy that builds a huge set ends the
child (`std::bad_alloc`, SIGABRT) instead of exhausting the machine.
Each variant is the module set with one module's source replaced (coverage mutants, see
`smi.policy.coverage`); for each, the child reports which entrypoints no longer return true.
This module imports nothing from smictl, so a child starts in about 50 ms.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any


def test_passed(ok: bool, text: str) -> bool:
    """`opa test` semantics: a test passes when its value is defined and not false."""
    stripped = text.strip()
    if not ok or stripped in ("undefined", "<error>") or stripped.startswith("(error"):
        return False
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError:
        return False
    if not isinstance(doc, dict):
        return False
    expressions = doc.get("expressions")
    return isinstance(expressions, list) and bool(expressions) and expressions[0] is not False


class _Child:
    def __init__(self, proto: IO[str], capture: IO[bytes]) -> None:
        self._proto = proto
        self._capture = capture
        self._libc = ctypes.CDLL(None)
        self._runtime: Any = None

    def emit(self, **event: Any) -> None:
        self._proto.write(json.dumps(event) + "\n")
        self._proto.flush()

    def captured(self) -> str:
        """What rego-cpp wrote since the last call (C stdio is flushed first)."""
        self._libc.fflush(None)
        return self._capture.read().decode("utf-8", "replace")

    def run(self, request: dict[str, Any]) -> None:
        built = self.build(request["modules"], request)
        if built is None:
            return
        for entrypoint, value in request.get("evaluate", ()):
            self.emit(stage="eval", entrypoint=entrypoint)
            started = time.perf_counter()
            ok, text = self.query(built, entrypoint, value)
            self.emit(
                result=entrypoint,
                ok=ok,
                output=text,
                seconds=time.perf_counter() - started,
                printed=self.captured(),
            )
        for index, (name, source) in enumerate(request.get("variants", ())):
            self.emit(stage="variant", index=index)
            modules = [(n, source if n == name else s) for n, s in request["modules"]]
            mutant = self.build(modules, request, announce=False)
            if mutant is None:
                self.emit(variant=index, failed=None)
                continue
            failed = [
                e
                for e, value in request.get("evaluate", ())
                if not test_passed(*self.query(mutant, e, value))
            ]
            self.captured()
            self.emit(variant=index, failed=failed)

    def build(
        self, modules: Sequence[Sequence[str]], request: dict[str, Any], *, announce: bool = True
    ) -> tuple[Any, Any] | None:
        """(interpreter, bundle), or None after reporting why not."""
        from regopy import Interpreter, RegoError

        build = Interpreter()
        for name, source in modules:
            if announce:
                self.emit(stage="add", module=name)
            try:
                build.add_module(name, source)
            except RegoError as exc:
                if announce:
                    self.emit(error="add", module=name, message=str(exc), log=self.captured())
                return None
        if request.get("data"):
            # Non-ASCII as UTF-8, not \u escapes: rego-cpp compares strings by their spelling
            # (smi.policy.rego_input), so an escaped "é" never equalled the literal "é".
            build.add_data_json(json.dumps(request["data"], ensure_ascii=False))
        if announce:
            self.emit(stage="build")
        try:
            bundle = build.build(None, request["entrypoints"])
        except RegoError as exc:
            if announce:
                self.emit(error="build", message=str(exc), log=self.captured())
            return None
        if not bundle.ok():
            if announce:
                self.emit(error="build", message="", log=self.captured())
            return None
        if announce:
            self.emit(built=True, log=self.captured())
        return build, bundle

    def query(self, built: tuple[Any, Any], entrypoint: str, value: Any) -> tuple[bool, str]:
        from regopy import Interpreter

        from smi.policy.rego_input import rego_input

        if self._runtime is None:
            self._runtime = Interpreter()
        self._runtime.set_input(rego_input(value))
        return self.query_set(built, entrypoint)

    def query_set(self, built: tuple[Any, Any], entrypoint: str) -> tuple[bool, str]:
        """Query one entrypoint on the input already set on the runtime interpreter."""
        from regopy.rego_shared import (
            rego_bundle_query_entrypoint,
            rego_free_output,
            rego_output_ok,
            rego_output_string,
        )

        out = rego_bundle_query_entrypoint(self._runtime._impl, built[1]._impl, entrypoint)
        try:
            return bool(rego_output_ok(out)), str(rego_output_string(out))
        finally:
            rego_free_output(out)


MEMORY_LIMIT_ENV = "SMICTL_REGO_MEMORY_LIMIT"


def limit_memory() -> None:
    """Cap the address space at what it is now (after `import regopy`) plus the budget."""
    import resource

    import regopy  # noqa: F401  (snmalloc reserves its address space here)

    budget = int(os.environ.get(MEMORY_LIMIT_ENV) or 0)
    if budget <= 0:
        return
    with Path("/proc/self/status").open(encoding="ascii") as status:
        size = next((int(x.split()[1]) * 1024 for x in status if x.startswith("VmSize:")), 0)
    if size:
        resource.setrlimit(resource.RLIMIT_AS, (size + budget, size + budget))


def serve() -> int:
    """The run-time evaluator: build once, then answer one line per evaluation request."""
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # policies' print() and rego-cpp's log never reach the protocol
        os.dup2(null, fd)
    limit_memory()
    from smi.policy.rego_input import rego_input

    with Path(os.devnull).open("rb") as capture:
        child = _Child(proto, capture)
        request = json.loads(proto_in.readline() or "null")
        built = child.build(request["modules"], request, announce=False) if request else None
        if built is None:
            child.emit(error="build")
            return 1
        child.emit(ready=True)
        for line in proto_in:
            try:
                ask = json.loads(line)
                child._runtime = child._runtime or _new_interpreter()
                if "input" in ask:
                    child._runtime.set_input(rego_input(ask["input"]))
            except Exception as exc:  # a bad input document: say so, keep serving
                child.emit(failure=f"{type(exc).__name__}: {exc}")
                continue
            for entrypoint in ask["entrypoints"]:
                child.emit(output=_guarded(child, built, entrypoint))
    return 0


def _new_interpreter() -> Any:
    from regopy import Interpreter

    return Interpreter()


def _guarded(child: _Child, built: tuple[Any, Any], entrypoint: str) -> list[Any]:
    """[ok, output, None], or [False, "", why] when the query itself raised (RegoError)."""
    try:
        ok, text = child.query_set(built, entrypoint)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        return [False, "", lines[0] if lines else type(exc).__name__]
    return [ok, text, None]


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    limit_memory()
    request = json.load(sys.stdin)
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    capture_fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(capture_fd, 1)
    os.dup2(capture_fd, 2)
    with Path(sys.argv[1]).open("rb") as capture:
        child = _Child(proto, capture)
        child.run(request)
        child.emit(done=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
