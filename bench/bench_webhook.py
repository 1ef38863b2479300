"""Admission webhook benchmark: `/validate` under gunicorn (2 event-loop workers, TLS) with wrk.

    python bench/bench_webhook.py [--quick] [--workers 2] [--threads 16]

Starts `smictl serve` on 127.0.0.1 (port 0) with a fresh CA and store, then runs wrk with a Lua
script that POSTs a real AdmissionReview (a valid TrafficSplit, through the whole admission
chain: loading, built-in validation and the shipped Rego policies) over keep-alive TLS
connections, as the kube-apiserver does:
- peak: as fast as the server answers (wrk -c 32);
- fixed rate: 500 reviews/s, evenly spaced and open-loop (`bench/constant_rate.py`, wrk2's
  method: latency counted from each request's due time, over a pool of 10 keep-alive TLS
  connections), p50/p99 latency — the target's figure;
- the same 500/s from `hey -q 50 -c 10` (Debian package `hey`), whose 10 workers tick together
  and so send bursts of 10 every 20 ms: reported as `validate_bursts_of_10`, a harsher load;
- reference: `/healthz` peak and fixed rate on the same server (what Flask + gunicorn + TLS
  cost alone).

wrk runs on the same 2 cores as the server, so every figure includes the load generator.
Writes bench/results/webhook.json. Targets (issue 4): p99 <= 10 ms at 500 reviews/s; peak
>= 1,500 reviews/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import constant_rate  # bench/, beside this script

RESULTS = Path(__file__).resolve().parent / "results" / "webhook.json"
TARGET_P99_MS = 10.0
TARGET_RATE = 500
TARGET_PEAK = 1500

REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "split.smi-spec.io", "version": "v1alpha4", "kind": "TrafficSplit"},
        "resource": {"group": "split.smi-spec.io", "version": "v1alpha4",
                     "resource": "trafficsplits"},
        "name": "web-canary",
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "object": {
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "kind": "TrafficSplit",
            "metadata": {"name": "web-canary", "namespace": "shop",
                         "labels": {"owner": "shop-team"}},
            "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 90},
                                                    {"service": "web-v2", "weight": 10}]},
        },
        "oldObject": None,
        "dryRun": False,
    },
}  # fmt: skip


def lua_script(body: str) -> str:
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def start_server(work: Path, *, workers: int, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    address = work / "address"
    cmd = [
        sys.executable,
        "-m",
        "smi.cli",
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--certs-dir",
        str(work / "certs"),
        "--store",
        str(work / "store.db"),
        "--address-file",
        str(address),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    log = (work / "server.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"smictl serve exited: {(work / 'server.log').read_text()[-2000:]}")
        if address.is_file():
            url = address.read_text().strip()
            context = ssl.create_default_context(cafile=str(work / "certs" / "ca.crt"))
            try:
                with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=2) as r:
                    if r.status == 200:
                        return proc, url
            except OSError:
                pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("smictl serve did not become ready in 120 s")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(m[1]) * _UNITS[m[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.M)}
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)$", output, re.M)
    if not rps or "50" not in pct:
        raise ValueError(f"unreadable wrk output:\n{output}")
    return {
        "rps": float(rps[1]),
        "requests": int(total[1]) if total else None,
        "p50_ms": pct["50"],
        "p75_ms": pct.get("75"),
        "p90_ms": pct.get("90"),
        "p99_ms": pct.get("99"),
        "non_2xx": int(errors[1]) if errors else 0,
        "socket_errors": socket_errors[1].strip() if socket_errors else "",
    }


def run_wrk(url: str, *, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    return {**result, "connections": connections, "seconds": seconds, "tool": "wrk"}


def parse_hey(output: str) -> dict[str, Any]:
    pct = {
        p: float(v) * 1000
        for p, v in re.findall(r"^\s+(50|75|90|99)%+ in ([\d.]+) secs", output, re.M)
    }
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", output))
    if not rps or "50" not in pct:
        raise ValueError(f"unreadable hey output:\n{output}")
    return {
        "rps": float(rps[1]),
        "requests": sum(int(n) for n in codes.values()),
        "p50_ms": pct["50"],
        "p75_ms": pct.get("75"),
        "p90_ms": pct.get("90"),
        "p99_ms": pct.get("99"),
        "non_2xx": sum(int(n) for c, n in codes.items() if not c.startswith("2")),
        "tool": "hey",
    }


def run_hey(url: str, *, body: Path | None, rate: int, seconds: int) -> dict[str, Any]:
    workers = 10
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", str(rate // workers)]
    if body is not None:
        cmd += ["-m", "POST", "-T", "application/json", "-D", str(body)]
    cmd.append(url)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"hey failed: {done.stderr or done.stdout}")
    return {**parse_hey(done.stdout), "connections": workers, "seconds": seconds}


def review_body(work: Path) -> Path:
    body = work / "review.json"
    body.write_text(json.dumps(REVIEW))
    return body


def server_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in the server's process group (gunicorn's master and
    workers), from /proc: the figure machine load does not distort much."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measured(pgid: int, run: Any) -> dict[str, Any]:
    """Run one load phase and add the server's CPU per request and the machine's load."""
    time.sleep(2)  # let the previous phase's load generator exit and its connections close
    before = server_cpu_seconds(pgid)
    result: dict[str, Any] = run()
    cpu = server_cpu_seconds(pgid) - before
    requests = result.get("requests") or 0
    result["server_cpu_ms_per_request"] = round(cpu / requests * 1000, 3) if requests else None
    result["loadavg_1m_after"] = os.getloadavg()[0]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (3 s per phase)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_webhook: wrk is not installed (make bench-deps installs it)", file=sys.stderr)
        return 2
    seconds = 3 if args.quick else 10
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="smictl-bench-webhook-"))
    proc, url = start_server(work, workers=args.workers, threads=args.threads)
    try:
        post = work / "validate.lua"
        post.write_text(lua_script(json.dumps(REVIEW)))
        plain = work / "get.lua"
        plain.write_text('wrk.method = "GET"\n')
        run_wrk(f"{url}/validate", script=post, connections=8, seconds=1)  # warm up
        pgid = proc.pid  # started in its own session: the group id is the master's pid
        peak = measured(
            pgid, lambda: run_wrk(f"{url}/validate", script=post, connections=32, seconds=seconds)
        )
        body, ca = review_body(work), work / "certs" / "ca.crt"
        fixed = measured(
            pgid,
            lambda: constant_rate.measure(
                f"{url}/validate", cafile=ca, body=body, rate=TARGET_RATE, seconds=seconds
            ),
        )
        bursts = (
            measured(
                pgid,
                lambda: run_hey(f"{url}/validate", body=body, rate=TARGET_RATE, seconds=seconds),
            )
            if shutil.which("hey")
            else None
        )
        health_fixed = measured(
            pgid,
            lambda: constant_rate.measure(
                f"{url}/healthz", cafile=ca, rate=TARGET_RATE, seconds=seconds
            ),
        )
        health = measured(
            pgid, lambda: run_wrk(f"{url}/healthz", script=plain, connections=32, seconds=seconds)
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    report = {
        "bench": "webhook",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1m_before": load_before},
        "server": {"workers": args.workers, "threads": args.threads,
                   "worker_class": "webhook.worker.LoopWorker", "tls": True},
        "validate_peak": peak,
        "validate_fixed_rate": {**fixed, "target_rps": TARGET_RATE},
        "validate_bursts_of_10": bursts,
        "healthz_peak": health,
        # The floor of this stack (gunicorn gthread + Flask + TLS) at the same fixed rate.
        "healthz_fixed_rate": health_fixed,
        "targets": {"p99_ms_at_500_rps": TARGET_P99_MS, "peak_rps": TARGET_PEAK},
        "met": {
            "p99_at_500_rps": (fixed["p99_ms"] or 1e9) <= TARGET_P99_MS,
            "peak": peak["rps"] >= TARGET_PEAK,
        },
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"/validate peak: {peak['rps']:.0f} reviews/s (p50 {peak['p50_ms']:.2f} ms, "
        f"p99 {peak['p99_ms']:.2f} ms; target >= {TARGET_PEAK})"
    )
    print(
        f"/validate at ~{TARGET_RATE}/s: achieved {fixed['rps']:.0f}/s, p50 "
        f"{fixed['p50_ms']:.2f} ms, p99 {fixed['p99_ms']:.2f} ms (target <= {TARGET_P99_MS})"
    )
    print(f"/healthz peak: {health['rps']:.0f}/s (p99 {health['p99_ms']:.2f} ms)")
    if bursts is not None:
        print(
            f"/validate at {TARGET_RATE}/s in bursts of 10 (hey): p50 {bursts['p50_ms']:.2f} ms, "
            f"p99 {bursts['p99_ms']:.2f} ms"
        )
    print(
        f"/healthz at {TARGET_RATE}/s: p50 {health_fixed['p50_ms']:.2f} ms, p99 "
        f"{health_fixed['p99_ms']:.2f} ms (the stack's own floor)"
    )
    print(
        f"server CPU per request: /validate {peak['server_cpu_ms_per_request']} ms, /healthz "
        f"{health['server_cpu_ms_per_request']} ms; load average before {load_before:.1f}, "
        f"after {health['loadavg_1m_after']:.1f} (other work on the 2 cores skews the rates)"
    )
    print(f"wrote {RESULTS}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
