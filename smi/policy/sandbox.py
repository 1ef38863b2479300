"""Run regopy on a set of modules in a child process, so that a crash costs a child, not us.

rego-cpp has been seen to abort (`terminate called ... shape rego-localref has no field
rego-refhead`) or segfault on modules that a user can write, and no exception handler catches
that. Every policy set is therefore compiled (and probed, or its tests run) in a child first
(`smi.policy._child`); only a set that survived is loaded into this process.

`run(request)` returns the child's events, its exit status and what rego-cpp printed;
`SandboxRun.crash` says whether the child died and in which step.

`EvalServer` is the run-time side: the embedded engine evaluates every admission in one
long-lived child (`python -m smi.policy._child --serve`), because a policy that is slow or huge
for some input (a comprehension over `numbers.range(1, 1e9)`, a set with quadratic cost) must
not stall or exhaust the server. Each entrypoint of an evaluation has its own deadline
(`DEFAULT_EVAL_TIMEOUT`; the child answers one line per entrypoint, so the parent knows which
one stalled) and every child an address-space budget (`DEFAULT_MEMORY_LIMIT`), and an answer is
read up to `MAX_ANSWER_BYTES`; past any of them the child is killed, that entrypoint is an error
(which the admission chain turns into a denial: fail closed), and the entrypoints after it are
evaluated in a new child. A caller's `deadline` bounds the whole evaluation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 120.0
DEFAULT_EVAL_TIMEOUT = 2.0  # per policy per admission (all of them: PolicySet.budget)
DEFAULT_PROBE_TIMEOUT = 10.0  # per entrypoint, on an empty input, when a policy set is loaded
DEFAULT_BUILD_TIMEOUT = 60.0  # starting an evaluator: import regopy and build the bundle
DEFAULT_MEMORY_LIMIT = 1 << 30  # bytes of address space a child may add after import
MAX_ANSWER_BYTES = 16 << 20
TIMED_OUT = -999  # SandboxRun.returncode of a child killed at a deadline
# EvalServer.evaluate's `deadline` (the admission's time for all its policies) ran out:
OUT_OF_TIME = "not evaluated: slower policies used up this admission's time for policies"
STOPPED_AT_DEADLINE = (
    "policy evaluation was stopped at the end of this admission's time for policies"
)
BUSY = "not evaluated: other admissions held the Rego engine until this one's time was up"
MEMORY_LIMIT_ENV = "SMICTL_REGO_MEMORY_LIMIT"  # read by smi.policy._child


_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def memory_limit_from_env() -> int:
    """The children's memory budget: `SMICTL_REGO_MEMORY_LIMIT` (bytes, or a Kubernetes quantity
    such as `128Mi`, so that a chart can derive it from the container's limit), else 1 GiB.
    An unreadable value keeps the default, with a warning: a typo must not lift the bound."""
    raw = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_MEMORY_LIMIT
    # ASCII digits: `\d` takes `١٢٨` too, which `int` reads as 128 and no quantity parser does.
    m = re.fullmatch(r"([0-9]{1,15})\s*([kKmMgG]i?)?", raw)
    if m is None or int(m[1]) == 0:
        logging.getLogger("smictl.policy").warning(
            "%s=%r is not a size (bytes, or e.g. 128Mi); using %d MiB",
            MEMORY_LIMIT_ENV,
            raw,
            DEFAULT_MEMORY_LIMIT >> 20,
        )
        return DEFAULT_MEMORY_LIMIT
    return int(m[1]) * _UNITS[(m[2] or "").lower()]


def _child_env(memory_limit: int | None) -> dict[str, str]:
    env = dict(os.environ)
    # The child must import this very smictl, also when it runs from a source checkout.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    budget = memory_limit if memory_limit is not None else memory_limit_from_env()
    env[MEMORY_LIMIT_ENV] = str(int(budget))
    return env


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    modules: Sequence[tuple[str, str]]
    entrypoints: Sequence[str]
    data: Mapping[str, Any] = field(default_factory=dict)
    evaluate: Sequence[tuple[str, Mapping[str, Any]]] = ()
    variants: Sequence[tuple[str, str]] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "modules": [list(m) for m in self.modules],
                "entrypoints": list(self.entrypoints),
                "data": dict(self.data),
                "evaluate": [[e, dict(v)] for e, v in self.evaluate],
                "variants": [list(v) for v in self.variants],
            }
        )


@dataclass(frozen=True, slots=True)
class SandboxRun:
    events: tuple[dict[str, Any], ...]
    returncode: int
    captured: str

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].get("done") is True

    @property
    def error(self) -> dict[str, Any] | None:
        """The child's report of a RegoError (add or build stage), if any."""
        return next((e for e in self.events if "error" in e), None)

    @property
    def results(self) -> list[dict[str, Any]]:
        return [e for e in self.events if "result" in e]

    @property
    def variants(self) -> dict[int, list[str] | None]:
        """Coverage mutants: index -> entrypoints that failed (None: the mutant did not build)."""
        return {int(e["variant"]): e["failed"] for e in self.events if "variant" in e}

    @property
    def last_stage(self) -> dict[str, Any]:
        """The step the child announced last: where it was when it died."""
        return next((e for e in reversed(self.events) if "stage" in e), {})

    def crash(self) -> str | None:
        """None if the child finished; otherwise one line saying how it died."""
        if self.finished:
            return None
        how = _signal_name(self.returncode)
        detail = _crash_detail(self.captured)
        return f"the Rego engine crashed ({how}){': ' + detail if detail else ''}"


def _signal_name(returncode: int) -> str:
    if returncode == TIMED_OUT:
        return "timed out"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _crash_detail(captured: str) -> str:
    for line in reversed(captured.splitlines()):
        if "what():" in line:
            return line.split("what():", 1)[1].strip()
    return ""


def run(
    request: SandboxRequest,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    eval_timeout: float | None = None,
) -> SandboxRun:
    """Run one request in a fresh child; never raises for what the child does.

    `timeout` bounds the whole run. With `eval_timeout`, each evaluation the child announces
    (`stage: eval`) must also end within that many seconds: loading a policy set probes it on an
    empty input, and one that takes minutes there would otherwise hold a server's start or
    reload for the whole `timeout`."""
    with tempfile.TemporaryDirectory(prefix="smictl-rego-") as tmp:
        capture = Path(tmp) / "captured.txt"
        capture.touch()
        feed = Path(tmp) / "request.json"
        feed.write_text(request.to_json(), encoding="utf-8")
        with feed.open("rb") as stdin:
            proc = subprocess.Popen(
                [sys.executable, "-m", "smi.policy._child", str(capture)],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_child_env(memory_limit),
            )
        out, timed_out = _read_events(proc, timeout=timeout, eval_timeout=eval_timeout)
        returncode = TIMED_OUT if timed_out else proc.returncode
        captured = capture.read_text(encoding="utf-8", errors="replace")
    events = tuple(_events(out.decode("utf-8", "replace")))
    return SandboxRun(events=events, returncode=returncode, captured=captured)


def _read_events(
    proc: subprocess.Popen[bytes], *, timeout: float, eval_timeout: float | None
) -> tuple[bytes, bool]:
    """The child's output until it closes it or a deadline passes (then the child is killed)."""
    assert proc.stdout is not None
    final = deadline = time.monotonic() + timeout
    out = bytearray()
    scanned = 0
    timed_out = False
    fd = proc.stdout.fileno()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                out += chunk
                while eval_timeout is not None and (end := out.find(b"\n", scanned)) >= 0:
                    event = next(iter(_events(out[scanned:end].decode("utf-8", "replace"))), {})
                    scanned = end + 1
                    if event.get("stage") == "eval":  # a probe starts: its own deadline
                        deadline = min(final, time.monotonic() + eval_timeout)
                    elif "result" in event:
                        deadline = final
            else:
                timed_out = True
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    if timed_out:
        proc.kill()
    try:
        proc.wait(timeout=max(0.0, final - time.monotonic()) + 1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    return bytes(out), timed_out


def _events(stdout: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a partial last line from a child that died while writing
        if isinstance(event, dict):
            out.append(event)
    return out


class EvalFailed(Exception):
    """One evaluation in an `EvalServer` did not produce an answer (one line, for users)."""


class EvalServer:
    """A long-lived child that evaluates entrypoints of one bundle, bounded in time and memory.

    Thread-safe (one evaluation at a time). A child that overruns its deadline or answer size
    is killed; one that died (a crash, its memory budget) is noticed; either way `evaluate`
    raises `EvalFailed` and the next call starts a fresh child. A child inherited across
    `fork()` (gunicorn) is left to the parent process: this process starts its own.
    """

    def __init__(
        self,
        request: SandboxRequest,
        *,
        timeout: float = DEFAULT_EVAL_TIMEOUT,
        build_timeout: float = DEFAULT_BUILD_TIMEOUT,
        memory_limit: int | None = None,
        max_answer: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._build = (
            json.dumps(
                {
                    "modules": [list(m) for m in request.modules],
                    "entrypoints": list(request.entrypoints),
                    "data": dict(request.data),
                }
            )
            + "\n"
        ).encode()
        self.timeout = timeout
        self.build_timeout = build_timeout
        self.memory_limit = memory_limit if memory_limit is not None else memory_limit_from_env()
        self.max_answer = max_answer
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._ready = False
        self._buffer = b""
        self._input_key: object | None = None  # the document the child holds, if known
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def start(self) -> None:
        """Start the child now (it builds while the caller goes on)."""
        with self._lock:
            self._ensure()

    def close(self) -> None:
        with self._lock:
            self._stop()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and self._pid == os.getpid() else None

    def evaluate(
        self,
        entrypoints: Sequence[str],
        input_doc: Any,
        *,
        deadline: float | None = None,
        input_key: object | None = None,
    ) -> list[list[Any] | EvalFailed]:
        """Per entrypoint, [ok, text, error] or the EvalFailed that stopped it (one line).

        Each entrypoint has its own `timeout`: one that overruns it, or crashes the child, fails
        alone and the entrypoints after it are asked again in a fresh child, so a slow policy
        costs only itself. `deadline` (time.monotonic) bounds the whole call: what is not
        answered by then fails. `input_key`: the same object as in the call before (with no
        restart since) means the same document, which the child still holds.
        TypeError: the document holds something JSON cannot carry."""
        answers: list[list[Any] | EvalFailed] = []
        while len(answers) < len(entrypoints):  # each round answers at least one
            rest = entrypoints[len(answers) :]
            answers.extend(self._round(rest, input_doc, deadline=deadline, key=input_key))
        return answers

    def _round(
        self, entrypoints: Sequence[str], input_doc: Any, *, deadline: float | None, key: object
    ) -> list[list[Any] | EvalFailed]:
        if not self._lock.acquire(timeout=-1 if deadline is None else _left(deadline)):
            return [EvalFailed(BUSY)] * len(entrypoints)
        try:
            proc = self._ensure()
            if not self._ready:
                failed = self._await_ready(proc, deadline)
                if failed is not None:
                    return [failed] * len(entrypoints)
            ask: dict[str, Any] = {"entrypoints": list(entrypoints)}
            if key is None or key is not self._input_key:  # else the child holds it already
                ask["input"] = input_doc
            line = (json.dumps(ask, default=_jsonable) + "\n").encode()
            self._input_key = None  # until the child has taken the document
            return self._answers(proc, line, entrypoints, deadline=deadline, key=key)
        finally:
            self._lock.release()

    def _await_ready(
        self, proc: subprocess.Popen[bytes], deadline: float | None
    ) -> EvalFailed | None:
        """Wait for the child's build; past `deadline` the child is left building for the
        next call (killing it would make that one wait for a new build)."""
        limit = time.monotonic() + self.build_timeout
        if deadline is not None and deadline < limit:
            assert proc.stdout is not None
            try:
                raw = self._read_line(proc.stdout.fileno(), deadline, why="")
            except _Overrun:
                return EvalFailed(OUT_OF_TIME)
            except OSError:
                raw = None
            if raw is None:
                self._stop()
                proc.wait()
                return EvalFailed(self._died(proc.returncode, "start"))
            ready = _decode(raw)
        else:
            try:
                ready = self._exchange(proc, None, limit, "start")
            except EvalFailed as exc:
                return exc
        if ready is None or ready.get("ready") is not True:
            self._stop()
            return EvalFailed("the Rego engine could not build the policy set")
        self._ready = True
        return None

    def _answers(
        self,
        proc: subprocess.Popen[bytes],
        ask: bytes,
        entrypoints: Sequence[str],
        *,
        deadline: float | None,
        key: object,
    ) -> list[list[Any] | EvalFailed]:
        out: list[list[Any] | EvalFailed] = []
        for index in range(len(entrypoints)):
            own = time.monotonic() + self.timeout
            cut = deadline is not None and deadline < own
            try:
                answer = self._exchange(
                    proc,
                    ask if index == 0 else None,
                    min(own, deadline) if deadline is not None else own,
                    "evaluate",
                    why=STOPPED_AT_DEADLINE if cut else None,
                )
            except EvalFailed as exc:  # the child is stopped: the rest go to a fresh one
                return [*out, exc]
            if "failure" in answer:  # the document, not one policy: every entrypoint fails
                why = EvalFailed(f"the Rego engine refused the input: {answer['failure']}")
                return [*out, *[why] * (len(entrypoints) - index)]
            output = answer.get("output")
            if not isinstance(output, list):
                self._stop()
                return [*out, EvalFailed("the Rego engine answered out of protocol")]
            out.append(output)
        self._input_key = key
        return out

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._pid != os.getpid():
            self._proc = None  # inherited across fork(): the parent's, not ours to use or kill
            self._finalizer = None
        if self._proc is None:
            proc = subprocess.Popen(
                [sys.executable, "-m", "smi.policy._child", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_child_env(self.memory_limit),
                close_fds=True,
            )
            self._proc, self._pid, self._ready, self._buffer = proc, os.getpid(), False, b""
            self._input_key = None
            self._finalizer = weakref.finalize(self, _kill, proc, os.getpid())
            try:
                assert proc.stdin is not None
                proc.stdin.write(self._build)
                proc.stdin.flush()
            except OSError:
                pass  # it died already: the first exchange says how
        return self._proc

    def _stop(self) -> None:
        proc, self._proc, self._ready, self._buffer = self._proc, None, False, b""
        self._input_key = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            _kill(proc, self._pid)

    def _exchange(
        self,
        proc: subprocess.Popen[bytes],
        line: bytes | None,
        deadline: float,
        step: str,
        *,
        why: str | None = None,
    ) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            if line is not None:
                proc.stdin.write(line)
                proc.stdin.flush()
            raw = self._read_line(proc.stdout.fileno(), deadline, why=why)
        except _Overrun as exc:
            self._stop()
            raise EvalFailed(str(exc)) from None
        except OSError:
            raw = None
        if raw is None:
            self._stop()
            proc.wait()
            raise EvalFailed(self._died(proc.returncode, step))
        answer = _decode(raw)
        if answer is None:
            self._stop()
            raise EvalFailed("the Rego engine answered garbage")
        return answer

    def _read_line(self, fd: int, deadline: float, *, why: str | None = None) -> bytes | None:
        """One line from the child; None at EOF; _Overrun past the deadline (`why`, else
        the evaluation timeout's message) or size."""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                if len(self._buffer) > self.max_answer:
                    raise _Overrun(f"the policy result is larger than {self.max_answer >> 20} MiB")
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise _Overrun(
                        why
                        or f"policy evaluation took longer than {self.timeout:g}s and was stopped"
                    )
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return None
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\n")
        return raw

    def _died(self, returncode: int | None, step: str) -> str:
        how = _signal_name(returncode if returncode is not None else 0)
        hint = ""
        if returncode is not None and -returncode in (signal.SIGABRT, signal.SIGSEGV):
            hint = f"; out of its {self.memory_limit >> 20} MiB memory budget?"
        while_ = "starting" if step == "start" else "evaluating"
        return f"the Rego engine crashed ({how}{hint}) while {while_}"


def _decode(raw: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(raw)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _jsonable(value: Any) -> Any:
    """What `json` cannot write itself in an input document (regopy's Input takes any Mapping,
    Sequence or Set): TypeError for anything else, which the engine reports."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Set | Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"the input document holds a {type(value).__name__}")


class _Overrun(Exception):
    pass


def _kill(proc: subprocess.Popen[bytes], owner: int) -> None:
    if owner != os.getpid():  # a forked process exiting: the child is its parent's
        return
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
