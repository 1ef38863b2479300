"""Hostile and broken user policies, and hostile remote-OPA answers: a broken policy never takes
the caller down, is bounded in time and memory, and fails closed with one clear line."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from policy_types import RunCli, WritePolicy

from smi.errors import PolicyError
from smi.policy import engine as engine_mod
from smi.policy import sandbox
from smi.policy.admission import admit
from smi.policy.modules import policies_of, read_modules
from smi.policy.policyset import PolicySet
from smi.policy.remote import RemoteOPA

ROUTE = {
    "apiVersion": "specs.smi-spec.io/v1alpha4",
    "kind": "HTTPRouteGroup",
    "metadata": {"name": "admin", "namespace": "shop"},
    "spec": {"matches": [{"name": "m", "pathRegex": "/admin$"}]},
}
REQUEST = {
    "uid": "r-1",
    "kind": {"kind": "HTTPRouteGroup"},
    "namespace": "shop",
    "operation": "CREATE",
    "object": ROUTE,
}
HUB = {"hub": {"metadata": {"name": "a"}}}

# Only slow for a real object (the load-time probe has an empty input), and small in memory:
# 36M iterations of an inner loop, many seconds in rego-cpp, a 6,000-element result.
SLOW = """
violation contains "slow" if {
	input.hub.metadata.name
	n := count([i | some i in numbers.range(1, 6000); some j in numbers.range(1, 6000); i == j])
	n < 0
}
"""
# Only huge for a real object: a comprehension of 300M numbers (gigabytes in rego-cpp).
HUGE = """
violation contains "huge" if {
	input.hub.metadata.name
	n := count([i | some i in numbers.range(1, 300000000)])
	n < 0
}
"""


def _engine(root: Path, **limits: Any) -> tuple[engine_mod.EmbeddedEngine, str]:
    modules = [m for m in read_modules([root]) if not m.is_test]
    [info] = policies_of(modules)
    engine = engine_mod.EmbeddedEngine(
        modules, entrypoints=[info.entrypoint], data={"parameters": {}}, **limits
    )
    return engine, info.entrypoint


def test_a_slow_policy_is_stopped_at_its_deadline_and_fails_closed(
    write_policy: WritePolicy,
) -> None:
    engine, entrypoint = _engine(write_policy("slow", SLOW), timeout=0.5)
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(engine.evaluate([entrypoint], HUB)), daemon=True
    )
    started = time.monotonic()
    worker.start()
    worker.join(timeout=2.5)
    assert result, "evaluation was not bounded in time"
    assert time.monotonic() - started < 2.5
    [outcome] = result[0]
    assert outcome.error == "policy evaluation took longer than 0.5s and was stopped"
    # the engine keeps serving after the stuck evaluator was killed
    assert engine.evaluate([entrypoint], {"hub": {}}) == [engine_mod.EvalOutcome()]
    engine.close()


def test_a_policy_over_its_memory_budget_ends_its_child_not_the_caller(
    write_policy: WritePolicy,
) -> None:
    engine, entrypoint = _engine(write_policy("huge", HUGE), memory_limit=64 << 20, timeout=2.5)
    [outcome] = engine.evaluate([entrypoint], HUB)
    assert outcome.error is not None
    assert outcome.error.startswith("the Rego engine crashed (SIGABRT; out of its 64 MiB")
    assert engine.evaluate([entrypoint], {"hub": {}}) == [engine_mod.EvalOutcome()]
    engine.close()


def test_a_slow_policy_denies_with_one_line_through_the_admission_chain(
    write_policy: WritePolicy,
) -> None:
    modules = [m for m in read_modules([write_policy("slow", SLOW)]) if not m.is_test]
    infos = policies_of(modules)
    engine = engine_mod.EmbeddedEngine(
        modules, entrypoints=[p.entrypoint for p in infos], data={}, checked=True, timeout=0.3
    )
    policies = PolicySet(policies=tuple(infos), engine=engine, modules=tuple(modules))
    result = admit(REQUEST, policies)
    assert (result.allowed, result.code) == (False, 403)
    assert result.messages == (
        "[slow] policy evaluation failed: policy evaluation took longer than 0.3s and was stopped",
    )
    engine.close()


def test_policy_print_output_never_corrupts_the_evaluator(write_policy: WritePolicy) -> None:
    root = write_policy(
        "noisy",
        'violation contains "x" if { print("{\\"outputs\\": [1]}\\nnot json"); input.hub.a }\n',
    )
    ps = PolicySet.load([root], include_shipped=False)
    assert ps.engine is not None
    [outcome] = ps.engine.evaluate([ps.policies[0].entrypoint], {"hub": {"a": 1}})
    assert outcome == engine_mod.EvalOutcome(violations=(engine_mod.Violation("x"),))


def test_a_violation_message_with_newlines_stays_one_line(write_policy: WritePolicy) -> None:
    root = write_policy(
        "forge",
        'violation contains {"msg": "ok\\n[other-policy] forged\\r\\u2028x", "path": "a\\nb"} '
        "if input.hub\n",
    )
    result = admit(REQUEST, PolicySet.load([root], include_shipped=False))
    assert result.messages == ("[forge] ok [other-policy] forged x",)
    assert [d.path for d in result.diagnostics] == ["a b"]


def test_a_policy_with_thousands_of_violations_is_capped(write_policy: WritePolicy) -> None:
    root = write_policy(
        "many",
        'violation contains concat("", ["m", format_int(i, 10), big]) if {\n'
        "\tinput.hub\n\tsome i in numbers.range(1000, 1299)\n"
        '\tbig := concat("", [x | some _ in numbers.range(1, 2000); x := "y"])\n}\n',
    )
    result = admit(REQUEST, PolicySet.load([root], include_shipped=False))
    assert len(result.messages) == 101
    assert result.messages[-1] == "[many] ... and 200 more violations"
    assert all(len(m) <= 1000 + len("[many] ") for m in result.messages)
    assert len(json.dumps(result.to_response())) < 200_000


def test_a_lone_surrogate_message_is_reported_not_a_traceback(
    write_policy: WritePolicy, run_cli: RunCli, tmp_path: Path
) -> None:
    root = write_policy("surrogate", 'violation contains "bad \\ud800 msg" if input.hub\n')
    manifest = tmp_path / "route.json"
    manifest.write_text(json.dumps(ROUTE))
    code, out, err = run_cli(
        "admit", "-f", str(manifest), "--policies", str(root), "--no-shipped-policies"
    )
    assert code == 1
    assert "[surrogate] bad \ufffd msg" in out
    assert "Traceback" not in err


# --- remote OPA --------------------------------------------------------------------------------


class Hostile(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HostileHandler)
        self.mode = "ok"
        self.other = ""
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HostileHandler(BaseHTTPRequestHandler):
    server: Hostile

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {"Content-Length": str(len(body))}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.hits.append("GET " + self.path)
        self._send(200, b'{"result": []}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits.append("POST " + self.path)
        mode = self.server.mode
        if mode == "redirect307":
            self._send(307, b"", {"Location": self.server.other + self.path, "Content-Length": "0"})
        elif mode == "redirect302":
            self._send(302, b"", {"Location": self.server.other + self.path, "Content-Length": "0"})
        elif mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif mode == "huge":
            self.send_response(200)
            self.send_header("Content-Length", str(64 << 20))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(b'{"result": [' + b" " * (64 << 20))
        elif mode == "error":
            error = {"code": "internal_error", "message": "a\nb" * 300}
            self._send(500, json.dumps(error).encode())
        else:
            self._send(200, b'{"result": []}')


@pytest.fixture
def hostile() -> Iterator[tuple[Hostile, Hostile]]:
    servers = [Hostile(), Hostile()]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    servers[0].other = servers[1].url
    yield servers[0], servers[1]
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("mode", ["redirect307", "redirect302"])
def test_a_redirecting_opa_fails_closed_and_the_input_goes_nowhere_else(
    hostile: tuple[Hostile, Hostile], mode: str
) -> None:
    opa, elsewhere = hostile
    opa.mode = mode
    [outcome] = RemoteOPA(opa.url).evaluate(["p/violation"], {"a": 1})
    assert outcome.error is not None
    assert "answered a redirect" in outcome.error
    assert elsewhere.hits == []


def test_an_opa_that_trickles_its_answer_is_bounded_by_one_deadline(
    hostile: tuple[Hostile, Hostile],
) -> None:
    opa, _ = hostile
    opa.mode = "trickle"
    started = time.monotonic()
    [outcome] = RemoteOPA(opa.url, timeout=0.5).evaluate(["p/violation"], {})
    assert time.monotonic() - started < 1.5
    assert outcome.error == f"OPA at {opa.url} did not answer in time (SMI5006)"


def test_a_huge_opa_answer_is_not_read_whole(hostile: tuple[Hostile, Hostile]) -> None:
    opa, _ = hostile
    opa.mode = "huge"
    [outcome] = RemoteOPA(opa.url, max_body=1 << 20).evaluate(["p/violation"], {})
    assert outcome.error == f"OPA at {opa.url} answered more than 1 MiB"


def test_an_opa_error_message_is_one_short_line(hostile: tuple[Hostile, Hostile]) -> None:
    opa, _ = hostile
    opa.mode = "error"
    [outcome] = RemoteOPA(opa.url).evaluate(["p/violation"], {})
    assert outcome.error is not None
    assert outcome.error.startswith(f"OPA at {opa.url} answered HTTP 500: a ba ba b")
    assert "\n" not in outcome.error and len(outcome.error) < 400


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("134217728", 128 << 20),
        ("128Mi", 128 << 20),
        ("1Gi", 1 << 30),
        ("500M", 500_000_000),
        ("", sandbox.DEFAULT_MEMORY_LIMIT),
        ("lots", sandbox.DEFAULT_MEMORY_LIMIT),
        ("0", sandbox.DEFAULT_MEMORY_LIMIT),
        ("-1", sandbox.DEFAULT_MEMORY_LIMIT),
        ("\u0661\u0662\u0668Mi", sandbox.DEFAULT_MEMORY_LIMIT),  # Arabic-Indic 128: no size
    ],
)
def test_the_memory_budget_comes_from_the_environment_as_a_chart_sets_it(
    raw: str, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The chart sets SMICTL_REGO_MEMORY_LIMIT from a quantity; a typo keeps the bound.
    monkeypatch.setenv(sandbox.MEMORY_LIMIT_ENV, raw)
    assert sandbox.memory_limit_from_env() == expected
    server = sandbox.EvalServer(sandbox.SandboxRequest(modules=[], entrypoints=[], data={}))
    assert server.memory_limit == expected


@pytest.mark.parametrize("url", ["", "opa:8181", "ftp://opa/", "http://", "http://opa:99999"])
def test_a_url_no_client_can_call_is_one_policy_error(url: str) -> None:
    """`http://opa:99999` passed the scheme and host check and ended as urlsplit's ValueError
    (a traceback, exit 70) when the port was read (smi.urls checks it with the rest)."""
    with pytest.raises(PolicyError, match=r"not an http\(s\) URL.*SMI5006"):
        RemoteOPA(url)
