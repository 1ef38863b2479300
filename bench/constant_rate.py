"""An open-loop, constant-rate HTTP/1.1 load generator (wrk2's idea, in asyncio + uvloop).

Why not `hey -q`: each of hey's workers paces itself with its own ticker and all tickers start
together, so `hey -c 10 -q 50` sends bursts of 10 requests every 20 ms rather than one every
2 ms — a different load, whose latency mostly measures the burst. Here request i is due at
`start + i / rate` whatever happened before, and goes out on any idle keep-alive connection of
a fixed pool (a new one is opened only if all are busy): the schedule never waits for a
response, so a stalled server cannot slow the load down (no coordinated omission), and a
request's latency counts from when it went out, a wait for a connection included.

Why not from its due time, as wrk2 counts: uvloop's timers have a resolution of 1 ms (a sleep
under 0.5 ms returns at once), so at 1,000 requests/s the requests leave up to about 0.5 ms
early or late. Counted from the due time, every latency carried that error of the client's
own timer: about one in ten came out negative, and the spread was five times the differences
between the proxies being measured. How far sends strayed from the schedule is reported
(`send_lag_*`), so a client that fell behind would show.

    python bench/constant_rate.py URL --rate 500 --seconds 10 [--body FILE] [--cafile CA]
                                  [--host HOST] [--connections 10]
    python bench/constant_rate.py --interleave NAME=URL NAME=URL ... --rate 1000
                                  --slices 24 --slice-seconds 1 [--host HOST]

Prints one JSON object: achieved rate, p50/p90/p99/max in ms, status counts. With
`--interleave`, one per NAME: the targets take turns at the rate, a slice each (the order
rotated every round), over connections held open throughout, after a warm-up slice each;
percentiles are of every slice's requests together, `slice_p50_ms` lists each slice's own
median and `slice_latencies_us` its latencies (what `difference_ci` resamples). Targets
measured in alternating one-second slices are charged alike for the shared machine's slow
swings, which runs of several seconds each are not: on the proxy bench the same topology's p50
moved by 0.1 ms between 8 s runs, more than the differences being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


class Client:
    """One target's request and keep-alive connections, kept across the runs `drive` makes."""

    def __init__(
        self,
        url: str,
        *,
        body: bytes | None = None,
        context: ssl.SSLContext | None = None,
        pool: int = 10,
        host_header: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.context = context if parts.scheme == "https" else None
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.context else 80)
        method = "POST" if body is not None else "GET"
        authority = host_header or f"{self.host}:{self.port}"
        head = f"{method} {parts.path or '/'} HTTP/1.1\r\nHost: {authority}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.request = (head + "\r\n").encode() + (body or b"")
        self.pool = pool
        self.idle: list[Connection] = []
        self.opened = 0
        self.latencies: list[float] = []
        self.send_lags: list[float] = []  # start - due time, per recorded request
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.elapsed = 0.0

    async def connect(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.context)
        self.opened += 1
        return Connection(reader, writer)

    async def open(self) -> None:
        while len(self.idle) < self.pool:
            self.idle.append(await self.connect())

    async def drive(self, rate: float, seconds: float, *, record: bool = True) -> list[float]:
        """`rate` requests a second for `seconds`, request i due at start + i/rate; the
        latencies (from each request's start) of this run, also added to the totals when
        `record`."""
        await self.open()
        idle = self.idle
        latencies: list[float] = []
        pending: set[asyncio.Task[None]] = set()

        async def one(due: float) -> None:
            sent = time.perf_counter()
            conn = None
            while idle and conn is None:
                conn = idle.pop()
                if conn.reader.at_eof():  # closed by the server while idle (as servers may)
                    conn.writer.close()
                    conn = None
            if conn is None:
                conn = await self.connect()
            try:
                status = await conn.exchange(self.request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if record:
                    self.errors += 1
                    kind = f"{type(exc).__name__}: {exc}"[:120]
                    self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
                conn.writer.close()
                return
            latencies.append(time.perf_counter() - sent)
            if record:
                self.send_lags.append(sent - due)
                self.statuses[status] = self.statuses.get(status, 0) + 1
            idle.append(conn)

        start = time.perf_counter() + 0.05
        for i in range(int(rate * seconds)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(one(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=30)
        if record:
            self.elapsed += time.perf_counter() - start
            self.latencies += latencies
        return latencies

    def close(self) -> None:
        for conn in self.idle:
            conn.writer.close()
        self.idle.clear()

    def result(self, rate: float) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        lags = sorted(self.send_lags)
        statuses = self.statuses
        return {
            "tool": "constant_rate.py",
            "target_rps": rate,
            "rps": round(len(latencies) / self.elapsed, 1) if self.elapsed else 0.0,
            "requests": len(latencies),
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "connections_opened": self.opened,
            "p50_ms": percentile(latencies, 0.50),
            "p75_ms": percentile(latencies, 0.75),
            "p90_ms": percentile(latencies, 0.90),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
            "send_lag_p1_ms": percentile(lags, 0.01),
            "send_lag_p50_ms": percentile(lags, 0.50),
            "send_lag_p99_ms": percentile(lags, 0.99),
            "send_lag_max_ms": round(lags[-1] * 1000, 3) if lags else None,
            "non_2xx": sum(n for s, n in statuses.items() if not 200 <= s < 300),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
        }


def percentile(ordered: list[float], p: float) -> float | None:
    """The p-quantile of sorted seconds, in ms."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)


async def run(
    url: str,
    *,
    rate: float,
    seconds: float,
    body: bytes | None,
    context: ssl.SSLContext | None,
    pool: int,
    host_header: str | None = None,
) -> dict[str, Any]:
    client = Client(url, body=body, context=context, pool=pool, host_header=host_header)
    try:
        await client.drive(rate, seconds)
    finally:
        client.close()
    return client.result(rate)


async def run_interleaved(
    urls: dict[str, str],
    *,
    rate: float,
    slices: int,
    slice_seconds: float,
    context: ssl.SSLContext | None,
    pool: int,
    host_header: str | None = None,
) -> dict[str, dict[str, Any]]:
    clients = {
        name: Client(url, context=context, pool=pool, host_header=host_header)
        for name, url in urls.items()
    }
    names = list(clients)
    medians: dict[str, list[float | None]] = {name: [] for name in names}
    kept: dict[str, list[list[int]]] = {name: [] for name in names}  # µs, per slice
    try:
        for name in names:  # warm-up: connections, the targets' pools and caches
            await clients[name].drive(rate, slice_seconds, record=False)
        for i in range(slices):
            turn = i % len(names)
            for name in names[turn:] + names[:turn]:
                latencies = sorted(await clients[name].drive(rate, slice_seconds))
                medians[name].append(percentile(latencies, 0.5))
                kept[name].append([round(x * 1e6) for x in latencies])
    finally:
        for client in clients.values():
            client.close()
    return {
        name: client.result(rate)
        | {"slice_p50_ms": medians[name], "slice_latencies_us": kept[name]}
        for name, client in clients.items()
    }


def difference_ci(
    a: list[list[int]], b: list[list[int]], q: float, *, resamples: int = 500, seed: int = 1
) -> dict[str, Any]:
    """`a`'s q-quantile less `b`'s, in ms, from per-slice latencies in µs (`--interleave`'s
    `slice_latencies_us`), with a 90 % interval from a bootstrap over slices: the same slice
    numbers drawn for both, since slice i of every target ran in the same round and met the
    same state of the shared machine. Why: a difference of two percentiles from one run says
    nothing of how far another run would move it; on the proxy bench a pair's p99 moved by
    more between resamples of one run than the difference being judged."""
    import random

    if len(a) != len(b) or not a:
        raise ValueError("the targets need the same number of slices, at least one")
    rng = random.Random(seed)

    def quantile(slices: list[list[int]], picks: list[int]) -> int:
        merged = sorted(x for i in picks for x in slices[i])  # (sorted runs: merged cheaply)
        return merged[min(len(merged) - 1, int(q * len(merged)))]

    every = list(range(len(a)))
    drawn = sorted(
        quantile(a, picks) - quantile(b, picks)
        for picks in ([rng.randrange(len(a)) for _ in every] for _ in range(resamples))
    )
    low, high = drawn[int(0.05 * resamples)], drawn[min(resamples - 1, int(0.95 * resamples))]
    return {
        "estimate_ms": round((quantile(a, every) - quantile(b, every)) / 1000, 3),
        "ci90_ms": [round(low / 1000, 3), round(high / 1000, 3)],
    }


def measure(
    url: str,
    *,
    rate: float,
    seconds: float,
    body: Path | None = None,
    cafile: Path | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """This client run in a process of its own (as the benchmarks call it: its CPU is then
    not the measuring process's), its JSON result returned."""
    cmd = [sys.executable, __file__, url, "--rate", str(rate), "--seconds", str(seconds)]
    for flag, value in (("--body", body), ("--cafile", cafile), ("--host", host)):
        if value is not None:
            cmd += [flag, str(value)]
    result: dict[str, Any] = _child(cmd, seconds + 60)
    return result


def measure_interleaved(
    urls: dict[str, str],
    *,
    rate: float,
    slices: int,
    slice_seconds: float,
    host: str | None = None,
) -> dict[str, dict[str, Any]]:
    """`run_interleaved` in a process of its own; its result per name."""
    cmd = [sys.executable, __file__, "--interleave", *(f"{n}={u}" for n, u in urls.items())]
    cmd += ["--rate", str(rate), "--slices", str(slices), "--slice-seconds", str(slice_seconds)]
    if host is not None:
        cmd += ["--host", host]
    seconds = (slices + 1) * slice_seconds * len(urls)
    result: dict[str, dict[str, Any]] = _child(cmd, seconds * 1.5 + 60)
    return result


def _child(cmd: list[str], timeout: float) -> Any:
    import subprocess

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"constant_rate.py failed: {done.stderr or done.stdout}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--body", type=Path, help="POST this file (JSON)")
    parser.add_argument("--cafile", type=Path, help="CA to verify an https server with")
    parser.add_argument("--connections", type=int, default=10, help="keep-alive pool size")
    parser.add_argument("--host", help="Host header (default: the URL's host:port)")
    parser.add_argument(
        "--interleave", nargs="+", metavar="NAME=URL", help="targets measured in turns"
    )
    parser.add_argument("--slices", type=int, default=24, help="turns per target (--interleave)")
    parser.add_argument("--slice-seconds", type=float, default=1.0, help="length of a turn")
    args = parser.parse_args()
    if (args.url is None) == (args.interleave is None):
        parser.error("give either a URL or --interleave NAME=URL ...")
    context = ssl.create_default_context(cafile=str(args.cafile) if args.cafile else None)
    context.check_hostname = False
    if args.cafile is None:
        context.verify_mode = ssl.CERT_NONE
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    result: Any
    if args.interleave is not None:
        urls = dict(item.split("=", 1) for item in args.interleave)
        result = runner(
            run_interleaved(
                urls,
                rate=args.rate,
                slices=args.slices,
                slice_seconds=args.slice_seconds,
                context=context,
                pool=args.connections,
                host_header=args.host,
            )
        )
    else:
        body = args.body.read_bytes() if args.body else None
        result = runner(
            run(
                args.url,
                rate=args.rate,
                seconds=args.seconds,
                body=body,
                context=context,
                pool=args.connections,
                host_header=args.host,
            )
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
