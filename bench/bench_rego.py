"""Rego admission benchmark: the admission chain per object, and `smictl admit` on 1,000 files.

    python bench/bench_rego.py [--quick] [--only admission,engine,inventory,load,admit_files]

Writes bench/results/rego.json (sections not run keep their previous figures).

Targets (issue 3): Rego admission per object <= 2 ms (p50 of the whole chain: load the object,
built-in validation, every applicable shipped policy); `smictl admit` on 1,000 files end to end
is reported as wall time (no target given).

Sections:
- admission:    `admit(request, shipped)` per object kind, p50/p99 (the webhook's call), and
                the Rego part alone (`PolicySet.evaluate`).
- engine:       one `EmbeddedEngine.evaluate` of one policy: the floor regopy sets.
- inventory:    cost of `input.inventory` with 10/100/1,000 objects of a kind a policy asks for.
- load:         `PolicySet.load()` (child-process check + build) and `smictl policy test`.
- admit_files:  `smictl admit -f DIR` as a subprocess over N generated files (mixed kinds).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smi.loading import load_object
from smi.policy.admission import admit
from smi.policy.input import Inventory, admission_input
from smi.policy.policyset import PolicySet

RESULTS = Path(__file__).resolve().parent / "results" / "rego.json"
TIME_BUDGET_S = 60.0  # each section stops sampling once past this
TARGET_MS = 2.0

Section = Callable[[bool], dict[str, Any]]


# --- objects ------------------------------------------------------------------------------------


def split(i: int, v1: int, v2: int, *, api: str = "split.smi-spec.io/v1alpha4") -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": "TrafficSplit",
        "metadata": {"name": f"rollout-{i}", "namespace": "shop", "labels": {"owner": "team"}},
        "spec": {
            "service": f"svc-{i}",
            "backends": [
                {"service": f"svc-{i}-v1", "weight": v1},
                {"service": f"svc-{i}-v2", "weight": v2},
            ],
        },
    }


def route_group(i: int, *, anchored: bool = True) -> dict[str, Any]:
    end = "$" if anchored else ""
    return {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": f"routes-{i}", "namespace": "shop", "labels": {"owner": "team"}},
        "spec": {
            "matches": [
                {"name": "read", "pathRegex": f"/api/v{i}/items/[0-9]+{end}", "methods": ["GET"]},
                {"name": "write", "pathRegex": f"/api/v{i}/items$", "methods": ["POST"]},
            ]
        },
    }


def target(i: int, *, source_ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": f"tt-{i}", "namespace": "shop", "labels": {"owner": "team"}},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": f"api-{i}", "namespace": "shop"},
            "rules": [{"kind": "HTTPRouteGroup", "name": f"routes-{i}"}],
            "sources": [{"kind": "ServiceAccount", "name": f"web-{i}", "namespace": source_ns}],
        },
    }


def request(obj: dict[str, Any], *, operation: str = "CREATE", old: Any = None) -> dict[str, Any]:
    return {
        "uid": "bench",
        "kind": {"group": "", "version": "", "kind": obj["kind"]},
        "namespace": "shop",
        "name": obj["metadata"]["name"],
        "operation": operation,
        "userInfo": {"username": "bench"},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }


# --- measuring ----------------------------------------------------------------------------------


def _samples(fn: Callable[[], object], *, n: int) -> dict[str, float]:
    fn()  # warm
    times: list[float] = []
    deadline = time.monotonic() + TIME_BUDGET_S
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t) / 1e6)
        if time.monotonic() > deadline:
            break
    times.sort()
    return {
        "samples": len(times),
        "p50_ms": round(statistics.median(times), 4),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 4),
        "mean_ms": round(statistics.fmean(times), 4),
    }


def bench_admission(quick: bool) -> dict[str, Any]:
    shipped = PolicySet.load()
    n = 200 if quick else 3000
    inv = Inventory.of(r for d in (route_group(1),) for r in load_object(d).resources)
    cases = {
        "trafficsplit_update_allowed": request(
            split(1, 70, 30), operation="UPDATE", old=split(1, 90, 10)
        ),
        "trafficsplit_update_denied": request(
            split(1, 50, 50), operation="UPDATE", old=split(1, 90, 10)
        ),
        "traffictarget_allowed": request(target(1)),
        "traffictarget_denied": request(target(1, source_ns="elsewhere")),
        "httproutegroup_denied": request(route_group(1, anchored=False)),
    }
    out: dict[str, Any] = {}
    for name, req in cases.items():
        verdict = admit(req, shipped, inventory=inv)
        out[name] = {
            "code": verdict.code,
            **_samples(lambda r=req: admit(r, shipped, inventory=inv), n=n),
        }
    # The Rego part alone: the policies of one kind on a prepared input document.
    hub = load_object(target(1)).resources[0].obj
    doc = admission_input(request(target(1)), hub=hub, old_hub=None, inventory={})
    rego_only = _samples(
        lambda: shipped.evaluate(kind="TrafficTarget", input_for=lambda _: doc), n=n
    )
    worst = max(v["p50_ms"] for v in out.values())
    return {
        "policies": len(shipped.policies),
        "cases": out,
        "rego_only_traffictarget": rego_only,
        "worst_p50_ms": worst,
        "target_ms": TARGET_MS,
        "meets_target": worst <= TARGET_MS,
    }


def bench_engine(quick: bool) -> dict[str, Any]:
    shipped = PolicySet.load()
    assert shipped.engine is not None
    policy = next(p for p in shipped.policies if p.name == "path-regex-anchored")
    hub = load_object(route_group(1, anchored=False)).resources[0].obj
    doc = admission_input(request(route_group(1)), hub=hub, old_hub=None, inventory={})
    engine = shipped.engine
    return {
        "policy": policy.name,
        "one_policy_one_input": _samples(
            lambda: engine.evaluate([policy.entrypoint], doc), n=300 if quick else 5000
        ),
    }


def _accounts(size: int, *, namespaces: int) -> Inventory:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": f"sa-{i}",
                "namespace": "shop" if i % namespaces == 0 else f"ns-{i % namespaces}",
            },
        }
        for i in range(size)
    ]
    return Inventory.of((), [c for d in docs for c in load_object(d).context])


def bench_inventory(quick: bool) -> dict[str, Any]:
    """A TrafficTarget through `admit()` while the store holds `size` ServiceAccounts (which the
    sensitive-destination policy asks for), all in its namespace or spread over 10."""
    shipped = PolicySet.load()
    req = request(target(1))
    out: dict[str, Any] = {}
    for size in (10, 100) if quick else (10, 100, 1000):
        for spread in (1, 10):
            inv = _accounts(size, namespaces=spread)
            out[f"service_accounts_{size}_over_{spread}_namespaces"] = _samples(
                lambda i=inv: admit(req, shipped, inventory=i), n=20 if size >= 1000 else 100
            )
    return {
        "note": "input.inventory holds the asked-for kinds of the namespaces the object names",
        "cases": out,
    }


def bench_load(quick: bool) -> dict[str, Any]:
    t = time.perf_counter()
    PolicySet.load()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "smi.cli", "policy", "test"],
        capture_output=True,
        text=True,
        check=False,
    )
    test_s = time.perf_counter() - t
    return {
        "policyset_load_s": round(load_s, 3),
        "policy_test_s": round(test_s, 3),
        "policy_test_summary": proc.stdout.strip().splitlines()[-1] if proc.stdout else "",
        "policy_test_exit": proc.returncode,
    }


def _write_files(root: Path, n: int) -> dict[str, int]:
    """n files, one object each: TrafficSplits, HTTPRouteGroups and TrafficTargets in turn,
    with every tenth HTTPRouteGroup unanchored (denied) and every tenth split invalid."""
    kinds = {"TrafficSplit": 0, "HTTPRouteGroup": 0, "TrafficTarget": 0}
    for i in range(n):
        which = i % 3
        if which == 0:
            doc = split(i, 90, 10) if i % 30 else split(i, -1, 10)
        elif which == 1:
            doc = route_group(i, anchored=bool(i % 10 != 1))
        else:
            doc = target(i - 1)
        kinds[doc["kind"]] += 1
        (root / f"obj-{i:05d}.json").write_text(json.dumps(doc))
    return kinds


def bench_admit_files(quick: bool) -> dict[str, Any]:
    n = 100 if quick else 1000
    runs = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="smictl-bench-") as tmp:
        root = Path(tmp)
        kinds = _write_files(root, n)
        walls: list[float] = []
        summary = ""
        for _ in range(runs):
            t = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "smi.cli",
                    "admit",
                    "-f",
                    str(root),
                    "--format",
                    "json",
                    "-o",
                    str(root.parent / f"{root.name}.json"),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            walls.append(time.perf_counter() - t)
            summary = proc.stderr.strip().splitlines()[-1] if proc.stderr else ""
        Path(root.parent / f"{root.name}.json").unlink(missing_ok=True)
    best = min(walls)
    return {
        "files": n,
        "kinds": kinds,
        "runs": runs,
        "wall_best_s": round(best, 3),
        "wall_all_s": [round(w, 3) for w in walls],
        "per_file_ms": round(best / n * 1e3, 3),
        "exit_code": proc.returncode,
        "summary": summary,
    }


SECTIONS: dict[str, Section] = {
    "admission": bench_admission,
    "engine": bench_engine,
    "inventory": bench_inventory,
    "load": bench_load,
    "admit_files": bench_admit_files,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--only", default="", help="comma-separated section names")
    args = parser.parse_args()
    names = [s for s in args.only.split(",") if s] or list(SECTIONS)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"python": sys.version.split()[0], "platform": platform.platform()}
    results["quick"] = args.quick
    missed: list[str] = []
    for name in names:
        started = time.monotonic()
        results[name] = SECTIONS[name](args.quick)
        took = time.monotonic() - started
        print(f"{name} ({took:.1f}s): {json.dumps(results[name])[:700]}", flush=True)
        if results[name].get("meets_target") is False:
            missed.append(name)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}; targets missed: {', '.join(missed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
