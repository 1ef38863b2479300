"""What a request costs a proxy whose caches went cold, counted instead of timed.

At an even 1,000 requests/s a proxy sleeps between requests, and what a request costs it then is
set by how many cache lines of code and data it must fetch again, not by how many instructions
it runs (docs/proxy.md, "The interpreter"). Timing that is noisy; counting it is not. This runs
the plain hop's request path in-process (the bench's router, the proxy's protocols on null
transports, as `bench_proxy.py --micro`) and, for comparison, a bare httptools relay of the shape
of bench_floor.py, under valgrind's callgrind with a simulated cache: a 4 MiB buffer is read
between calls (more than the simulated 1 MiB last level holds), and only the protocols' entry
points are collected. Lines fetched from memory per request (both directions) are the figure;
it moves only when the code does.

`pair` does the same for the mTLS pair (`bench_proxy.MicroPair`: the front's outbound path, the
web side's inbound path, both TLS layers, in memory), at its four wake-ups: the request, its
TLS records at the web side, the app's response, its records at the front. Its readers nest (a
TLS layer calls its protocol's), so each is called through libffi and collection is toggled
there; a run that calls `len` that way instead is subtracted (the calls' own cost).

    python bench/bench_cold.py            # hop and bare, 200 requests each (about a minute)
    python bench/bench_cold.py hop -n 50
    python bench/bench_cold.py pair -n 100   # (about two minutes)
    python bench/bench_cold.py --timed    # timed instead: µs per wake-up, caches evicted
                                          # by another process on the same core

(`--timed` is noisy, ±15 % between runs: compare variants in alternating runs.)

Needs valgrind (a Debian package; installed here). Writes bench/results/cold.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_proxy as bp

RESULTS = bp.REPO / "bench" / "results" / "cold.json"
EVICT_BYTES = 4 << 20
CACHE = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64"]
# What is collected: the C entry points of each side's `data_received` (the bare relay's are
# interpreted, so its parser's `feed_data`, which runs its callbacks and writes, stands for them).
TOGGLES = {
    "hop": [
        "CPyPy_server___HttpProxy___data_received",
        "CPyPy_upstream___UpstreamConnection___data_received",
    ],
    "bare": ["__pyx_pw_9httptools_6parser_6parser_10HttpParser_13feed_data"],
    # the pair's four readers, each called through libffi (`_through_ffi`)
    "pair": ["ffi_call"],
    "pair-null": ["ffi_call"],
}
WAKEUPS = {
    "hop": ["request", "response"],
    "bare": ["request", "response"],
    "pair": ["request", "tls request", "response", "tls response"],
}
EVENTS = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]


# --- inside valgrind ------------------------------------------------------------------------


def _bare() -> tuple[Any, Any]:
    """A relay that parses both ways with httptools and does nothing else (bench_floor.py)."""
    import httptools

    class Up:
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.transport = bp.NullTransport()
            self.down: Any = None
            self.last = b""

        def data_received(self, data: bytes) -> None:
            self.last = data
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            down, self.down = self.down, None
            down.done(self)

    class Down:
        def __init__(self, up: Up) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.transport = bp.NullTransport()
            self.pool = [up]
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf = data
            self.parser.feed_data(data)

        def on_url(self, url: bytes) -> None:
            pass

        def on_header(self, name: bytes, value: bytes) -> None:
            pass

        def on_message_complete(self) -> None:
            up = self.pool.pop()
            up.down = self
            up.transport.write(self.buf)

        def done(self, up: Up) -> None:
            self.transport.write(up.last)
            self.pool.append(up)

    up = Up()
    return Down(up), up


Step = tuple[Callable[[], bytes], Callable[[bytes], object]]  # (the bytes read, the reader)


async def _steps(which: str) -> list[Step]:
    """The reads of one request, in order: each a wake-up of a proxy with sockets."""
    if which == "pair":
        pair = bp.MicroPair()
        await pair.start()

        def request() -> bytes:
            pair.client.sent.clear()
            return bp.MICRO_REQUEST

        return [
            (request, pair.front.data_received),
            (pair.to_web.take, pair.web_tls.data_received),
            (pair.answer, pair.upstream.data_received),
            (pair.to_front.take, pair.front_tls.data_received),
        ]
    down, up = await bp.micro_hop() if which == "hop" else _bare()
    return [
        (lambda: bp.MICRO_REQUEST, down.data_received),
        (lambda: bp.MICRO_RESPONSE, up.data_received),
    ]


def _through_ffi(reader: Callable[[bytes], object]) -> Callable[[bytes], object]:
    """`reader` called by a C call through libffi (ctypes), which the request path never
    makes: collected on `ffi_call` (TOGGLES), the pair's readers can nest (a TLS layer calls
    its protocol's), where a toggle on each would turn collection off inside the other. (The
    interpreter's own C-API functions have no symbols here: Debian strips them.)"""
    import ctypes

    call = ctypes.pythonapi.PyObject_CallOneArg
    call.argtypes = [ctypes.py_object, ctypes.py_object]
    call.restype = ctypes.py_object
    return lambda data: call(reader, data)


async def _inner(which: str, requests: int) -> None:
    """`requests` after a warm-up, under valgrind. `pair-null`: the pair with its readers
    replaced by `len` after the warm-up, the cost of the calls through libffi to subtract."""
    steps = await _steps(which.removesuffix("-null"))
    if which.startswith("pair"):
        steps = [(read, _through_ffi(reader)) for read, reader in steps]
    evict = bytearray(os.urandom(1 << 20)) * (EVICT_BYTES >> 20)
    for _ in range(50):  # one-time caches filled (split plans, lower-cased names)
        for read, reader in steps:
            reader(read())
    if which.endswith("-null"):
        steps = [(read, _through_ffi(len)) for read, _ in steps]
    for _ in range(requests):
        for read, reader in steps:
            data = read()
            evict.count(b"\x00\x01\x02")
            reader(data)


async def _timed(which: str, requests: int) -> list[float]:
    return _wakeups(await _steps(which), requests)


def _wakeups(steps: list[Step], requests: int) -> list[float]:
    """Median µs of each wake-up of a request (`_steps`), each after a process pinned to the
    same core has read the eviction buffer (as the client and the app do between requests)."""
    import statistics
    import time

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    asks, answers = os.pipe(), os.pipe()
    child = os.fork()
    if child == 0:  # the evictor
        evict = bytearray(os.urandom(1 << 20)) * (EVICT_BYTES >> 20)
        while os.read(asks[0], 1) == b"x":
            evict.count(b"\x00\x01\x02")
            os.write(answers[1], b"k")
        os._exit(0)

    def evicted() -> None:
        os.write(asks[1], b"x")
        os.read(answers[0], 1)

    clock = time.perf_counter_ns
    took: list[list[int]] = [[] for _ in steps]
    try:
        for _ in range(requests):
            for (read, reader), times in zip(steps, took, strict=True):
                data = read()
                evicted()
                started = clock()
                reader(data)
                times.append(clock() - started)
    finally:
        os.write(asks[1], b"q")
        os.waitpid(child, 0)
    return [statistics.median(times) / 1000 for times in took]


# --- outside ----------------------------------------------------------------------------------


def _rows(annotated: str) -> list[tuple[dict[str, int], str]]:
    """(events, "file:function [object]") per function of `callgrind_annotate`'s table."""
    rows = []
    for line in annotated.splitlines():
        tokens, nums, i = line.split(), [], 0
        while i < len(tokens) and len(nums) < len(EVENTS):
            token = tokens[i]
            if token == ".":
                nums.append(0)
            elif re.fullmatch(r"[\d,]+", token):
                nums.append(int(token.replace(",", "")))
                if i + 1 < len(tokens) and tokens[i + 1].startswith("("):
                    while not tokens[i + 1].endswith(")"):
                        i += 1
                    i += 1
            else:
                break
            i += 1
        if len(nums) == len(EVENTS) and i < len(tokens):
            rows.append((dict(zip(EVENTS, nums, strict=True)), " ".join(tokens[i:])))
    return rows


def _collect(which: str, requests: int) -> tuple[dict[str, int], Counter[str]]:
    """Event totals, and lines fetched by object, of one run of `requests` after the warm-up."""
    with tempfile.TemporaryDirectory(prefix="cold-") as tmp:
        out = Path(tmp) / "callgrind.out"
        toggles = [f"--toggle-collect={name}" for name in TOGGLES[which]]
        inner = [sys.executable, str(Path(__file__).resolve()), "--inner", which]
        cmd = ["valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHE, *toggles]
        cmd += ["--collect-atstart=no", f"--callgrind-out-file={out}", *inner, "-n", str(requests)]
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)
        annotate = ["callgrind_annotate", "--auto=no", "--threshold=100", str(out)]
        text = subprocess.run(annotate, check=True, capture_output=True, text=True).stdout
    rows = _rows(text)
    totals = next((e for e, name in rows if "PROGRAM TOTALS" in name), None)
    functions = [(e, name) for e, name in rows if "PROGRAM TOTALS" not in name]
    if totals is None:
        totals = {k: sum(e[k] for e, _ in functions) for k in EVENTS}
    by_object: Counter[str] = Counter()
    for events, name in functions:
        found = re.search(r"\[([^\]]*)\]\s*$", name)
        obj = found.group(1).rsplit("/", 1)[-1].split(".cpython")[0] if found else "?"
        by_object[obj] += events["ILmr"] + events["DLmr"] + events["DLmw"]
    return totals, by_object


def measure(which: str, requests: int) -> dict[str, Any]:
    """Per request: a run of `requests` less a run of none, so that the warm-up (also
    collected: it goes through the same entry points) is not counted; for the pair, less a
    run of `requests` calls of nothing through libffi instead (`_inner`)."""
    totals, by_object = _collect(which, requests)
    base, base_by_object = (
        _collect(f"{which}-null", requests) if which == "pair" else _collect(which, 0)
    )
    per = {k: round((totals[k] - base[k]) / requests) for k in EVENTS}
    by_object.subtract(base_by_object)
    return {
        "requests": requests,
        "per_request": per,
        "cold_lines_per_request": per["ILmr"] + per["DLmr"] + per["DLmw"],
        "cold_lines_by_object": {k: round(v / requests) for k, v in by_object.most_common(6)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="*", help="hop, bare, pair (default: hop, bare)")
    parser.add_argument("-n", "--requests", type=int, default=200)
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="20 requests each")
    parser.add_argument("--timed", action="store_true", help="time wake-ups (no valgrind)")
    args = parser.parse_args()
    if args.inner:
        import uvloop

        uvloop.run(_inner(args.inner, args.requests))
        return 0
    unknown = [w for w in args.which if w not in WAKEUPS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)} (hop, bare, pair)")
    if args.timed:
        import uvloop

        for which in args.which or ["hop", "bare"]:
            medians = uvloop.run(_timed(which, max(args.requests, 1000)))
            each = "  ".join(f"{n} {m:6.2f}" for n, m in zip(WAKEUPS[which], medians, strict=True))
            print(f"{which:5} cold wake-up, µs (median): {each}")
        return 0
    if shutil.which("valgrind") is None:
        print("bench_cold: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 1
    requests = 20 if args.quick else args.requests
    # (What was not measured this time is kept: `pair` alone does not drop `hop`.)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results |= {"python": sys.version.split()[0], "cache": CACHE, "evict_bytes": EVICT_BYTES}
    for which in args.which or ["hop", "bare"]:
        results[which] = measure(which, requests)
        r = results[which]
        print(
            f"{which:5} cold lines per request {r['cold_lines_per_request']:5}  "
            f"instructions {r['per_request']['Ir']:6}  by object {r['cold_lines_by_object']}"
        )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
