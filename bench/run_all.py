"""Run every benchmark in bench/ in one go and print one summary line each.

Each `bench_*.py` is a standalone script that writes `bench/results/<name>.json`; this runner
only sequences them (one at a time, so they never compete for the two cores) and reports which
failed. `--quick` is passed through for a short smoke run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ORDER = ["bench_load", "bench_policy", "bench_rego", "bench_webhook", "bench_proxy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run of every bench")
    parser.add_argument("only", nargs="*", help="bench names to run (default: all)")
    args = parser.parse_args()
    names = args.only or [n for n in ORDER if (BENCH / f"{n}.py").exists()]
    failed: list[str] = []
    for name in names:
        cmd = [sys.executable, str(BENCH / f"{name}.py")] + (["--quick"] if args.quick else [])
        print(f"== {name}", flush=True)
        started = time.monotonic()
        rc = subprocess.call(cmd, timeout=1800)
        print(f"== {name}: exit {rc} in {time.monotonic() - started:.1f}s", flush=True)
        if rc != 0:
            failed.append(name)
    print(f"results in {BENCH / 'results'}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
