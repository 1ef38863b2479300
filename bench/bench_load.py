"""Loader benchmark: load and validate 10,000 mixed SMI resources from files.

    python bench/bench_load.py [--quick] [--count N]

Generates a realistic mesh (per app: an HTTPRouteGroup with three matches, a TCPRoute, a
TrafficTarget, a TrafficSplit, in a mix of versions, plus its Services as context), writes it
as multi-document YAML files of 100 documents in three forms, then times
`smi.loading.load_paths` + `smi.compiler.validate` over each directory (the path of
`smictl validate -f DIR`):

    yaml       block style, as kubectl and PyYAML write it (read by `smi.yamlblock`)
    yaml-flow  short lists and maps inline (`methods: [GET, HEAD]`), as people often write
               them: read by the full libyaml path, which builds line maps as it goes
    json       `kind: List` files

Each form is timed three times in this process (the best counts: caches of names and regexes
are warm from the first pass on) and once in a fresh process (`cold`: what one
`smictl validate` run pays, imports excluded). Throughput is given per second of wall time and
per CPU-second: on a machine shared with other work the CPU-seconds are the figure that says
what an idle machine would do. Peak memory is measured in a separate pass under tracemalloc
(which slows the code it watches, so it never shares a pass with the timing).

Writes bench/results/load.json. Target (issue 2): >= 20,000 resources/s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

from smi.compiler.checks import validate
from smi.loading import load_paths

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
TARGET_PER_S = 20_000
DOCS_PER_FILE = 100
TIME_BUDGET_S = 120.0


# --- the workload ---------------------------------------------------------------------------------


def _routes(i: int, ns: str) -> list[dict[str, Any]]:
    old = i % 4 == 0  # a quarter written in older versions
    matches = [
        {"name": "read", "pathRegex": f"/api/v{i}/items(/[0-9]+)?$", "methods": ["GET", "HEAD"]},
        {
            "name": "write",
            "pathRegex": f"/api/v{i}/items$",
            "methods": ["POST"],
            "headers": [{"content-type": "application/json.*"}],
        },
        {"name": "metrics", "pathRegex": "/metrics$", "methods": ["GET"]},
    ]
    meta = {"name": f"app-{i}-routes", "namespace": ns}
    group: dict[str, Any] = (
        {
            "apiVersion": "specs.smi-spec.io/v1alpha2",
            "kind": "HTTPRouteGroup",
            "metadata": meta,
            "matches": matches,
        }
        if old
        else {
            "apiVersion": "specs.smi-spec.io/v1alpha4",
            "kind": "HTTPRouteGroup",
            "metadata": meta,
            "spec": {"matches": matches},
        }
    )
    tcp = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "TCPRoute",
        "metadata": {"name": f"app-{i}-tcp", "namespace": ns},
        "spec": {"matches": {"ports": [8080 + i % 100, 9090]}},
    }
    return [group, tcp]


def _target(i: int, ns: str) -> dict[str, Any]:
    spec = {
        "destination": {"kind": "ServiceAccount", "name": f"app-{i}", "namespace": ns},
        "rules": [
            {"kind": "HTTPRouteGroup", "name": f"app-{i}-routes", "matches": ["read", "write"]},
            {"kind": "TCPRoute", "name": f"app-{i}-tcp"},
        ],
        "sources": [
            {"kind": "ServiceAccount", "name": f"app-{i - 1}", "namespace": ns},
            {"kind": "ServiceAccount", "name": "prometheus", "namespace": ns},
        ],
    }
    version = "v1alpha2" if i % 4 == 1 else "v1alpha3"
    return {
        "apiVersion": f"access.smi-spec.io/{version}",
        "kind": "TrafficTarget",
        "metadata": {"name": f"app-{i}", "namespace": ns},
        "spec": spec,
    }


def _split(i: int, ns: str) -> dict[str, Any]:
    v1alpha1 = i % 4 == 2
    weights = ("900m", "100m") if v1alpha1 else (90, 10)
    return {
        "apiVersion": f"split.smi-spec.io/{'v1alpha1' if v1alpha1 else 'v1alpha4'}",
        "kind": "TrafficSplit",
        "metadata": {"name": f"app-{i}-canary", "namespace": ns},
        "spec": {
            "service": f"app-{i}",
            "backends": [
                {"service": f"app-{i}-v1", "weight": weights[0]},
                {"service": f"app-{i}-v2", "weight": weights[1]},
            ],
        },
    }


def _services(i: int, ns: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80}]},
        }
        for name in (f"app-{i}", f"app-{i}-v1", f"app-{i}-v2")
    ]


def workload(count: int) -> tuple[list[dict[str, Any]], int]:
    """(documents, number of SMI resources among them): `count` SMI resources, 4 per app."""
    docs: list[dict[str, Any]] = []
    smi = 0
    for i in range(count // 4):
        ns = f"team-{i % 20}"
        objects = [*_routes(i, ns), _target(i, ns), _split(i, ns)]
        docs.extend(objects)
        docs.extend(_services(i, ns))
        smi += len(objects)
    return docs, smi


FORMATS = ("yaml", "yaml-flow", "json")


def write_files(docs: list[dict[str, Any]], directory: Path, *, form: str) -> None:
    for n, start in enumerate(range(0, len(docs), DOCS_PER_FILE)):
        chunk = docs[start : start + DOCS_PER_FILE]
        if form == "json":
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk}, indent=1)
            (directory / f"part-{n:04d}.json").write_text(text)
        else:
            flow = None if form == "yaml-flow" else False
            text = yaml.safe_dump_all(chunk, sort_keys=False, default_flow_style=flow)
            (directory / f"part-{n:04d}.yaml").write_text(text)


# --- measuring ------------------------------------------------------------------------------------


def run_once(directory: Path) -> dict[str, Any]:
    gc.collect()  # garbage of the previous pass is not this pass's cost
    started, cpu_started = time.perf_counter(), time.process_time()
    loaded = load_paths([str(directory)])
    loaded_at = time.perf_counter()
    diagnostics = loaded.diagnostics + validate(loaded.resources, loaded.context)
    finished, cpu_finished = time.perf_counter(), time.process_time()
    errors = [d.format() for d in diagnostics if d.is_error]
    return {
        "resources": len(loaded.resources),
        "context": len(loaded.context),
        "load_s": loaded_at - started,
        "validate_s": finished - loaded_at,
        "total_s": finished - started,
        "cpu_s": cpu_finished - cpu_started,
        "diagnostics": len(diagnostics),
        "errors": errors[:5],
    }


def cold_run(directory: Path) -> dict[str, Any]:
    """One pass in a fresh process: nothing cached yet, as for one `smictl validate` run."""
    out = subprocess.run(
        [sys.executable, __file__, "--cold-run", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIME_BUDGET_S,
    )
    run: dict[str, Any] = json.loads(out.stdout)
    run["resources_per_s"] = round(run["resources"] / run["total_s"])
    run["resources_per_cpu_s"] = round(run["resources"] / run["cpu_s"])
    return run


def peak_memory(directory: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        loaded = load_paths([str(directory)])
        validate(loaded.resources, loaded.context)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(directory: Path, *, repeats: int, deadline: float) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        runs.append(run_once(directory))
        if time.monotonic() > deadline:
            break
    best = min(runs, key=lambda r: r["total_s"])
    return {
        **best,
        "runs": len(runs),
        "resources_per_s": round(best["resources"] / best["total_s"]),
        "resources_per_cpu_s": round(best["resources"] / best["cpu_s"]),
        # SMI objects and the Services around them: every document is parsed and dispatched.
        "documents_per_cpu_s": round((best["resources"] + best["context"]) / best["cpu_s"]),
        "load_per_s": round(best["resources"] / best["load_s"]),
        "cold": cold_run(directory),
        "peak_traced_mib": round(peak_memory(directory) / 2**20, 1),
    }


def _report(name: str, r: dict[str, Any]) -> str:
    cold = r["cold"]
    return (
        f"{name}: {r['resources']} resources (+{r['context']} context) in {r['total_s']:.3f}s "
        f"(load {r['load_s']:.3f}s, validate {r['validate_s']:.3f}s) = "
        f"{r['resources_per_s']:,}/s ({r['resources_per_cpu_s']:,} per CPU-second; "
        f"{r['documents_per_cpu_s']:,} documents per CPU-second); "
        f"cold {cold['resources_per_s']:,}/s ({cold['resources_per_cpu_s']:,} per CPU-second); "
        f"peak {r['peak_traced_mib']} MiB traced"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 resources, one run")
    parser.add_argument("--count", type=int, default=None, help="SMI resources to generate")
    parser.add_argument("--cold-run", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_run:  # one pass, results on stdout (see cold_run)
        print(json.dumps(run_once(Path(args.cold_run))))
        return 0
    count = args.count or (1_000 if args.quick else 10_000)
    repeats = 1 if args.quick else 3
    deadline = time.monotonic() + TIME_BUDGET_S
    docs, smi = workload(count)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="smictl-bench-load-") as tmp:
        for fmt in FORMATS:
            directory = Path(tmp) / fmt
            directory.mkdir()
            write_files(docs, directory, form=fmt)
            results[fmt] = measure(directory, repeats=repeats, deadline=deadline)
            print(_report(fmt, results[fmt]), flush=True)
    bad = [fmt for fmt, r in results.items() if r["errors"] or r["resources"] != smi]
    doc = {
        "bench": "load",
        "quick": args.quick,
        "smi_resources": smi,
        "documents": len(docs),
        "target_resources_per_s": TARGET_PER_S,
        "target_met": {fmt: r["resources_per_s"] >= TARGET_PER_S for fmt, r in results.items()},
        "target_met_per_cpu_s": {
            fmt: r["resources_per_cpu_s"] >= TARGET_PER_S for fmt, r in results.items()
        },
        "results": results,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")
    if bad:
        print(f"the generated set did not load cleanly: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
