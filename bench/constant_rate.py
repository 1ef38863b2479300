"""An open-loop, constant-rate HTTP/1.1 load generator (wrk2's idea, in asyncio + uvloop).

Why not `hey -q`: each of hey's workers paces itself with its own ticker and all tickers start
together, so `hey -c 10 -q 50` sends bursts of 10 requests every 20 ms rather than one every
2 ms — a different load, whose latency mostly measures the burst. Here request i is due at
`start + i / rate` whatever happened before (no coordinated omission: latency is measured from
the due time, so a stalled server is charged for the requests it kept waiting), and goes out on
any idle keep-alive connection of a fixed pool (a new one is opened only if all are busy).

    python bench/constant_rate.py URL --rate 500 --seconds 10 [--body FILE] [--cafile CA]
                                  [--host HOST] [--connections 10]

Prints one JSON object: achieved rate, p50/p90/p99/max in ms, status counts.
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
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if context else 80)
    method = "POST" if body is not None else "GET"
    authority = host_header or f"{host}:{port}"
    head = f"{method} {parts.path or '/'} HTTP/1.1\r\nHost: {authority}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = (head + "\r\n").encode() + (body or b"")

    async def connect() -> Connection:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        return Connection(reader, writer)

    idle: list[Connection] = [await connect() for _ in range(pool)]
    opened = pool
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    total = int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        nonlocal opened, errors
        conn = idle.pop() if idle else None
        if conn is None:
            opened += 1
            conn = await connect()
        try:
            status = await conn.exchange(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.writer.close()
            return
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        idle.append(conn)

    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)
    elapsed = time.perf_counter() - start
    for conn in idle:
        conn.writer.close()
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)

    return {
        "tool": "constant_rate.py",
        "target_rps": rate,
        "rps": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "errors": errors,
        "connections_opened": opened,
        "p50_ms": pct(0.50),
        "p75_ms": pct(0.75),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "non_2xx": sum(n for s, n in statuses.items() if not 200 <= s < 300),
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
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
    import subprocess

    cmd = [sys.executable, __file__, url, "--rate", str(rate), "--seconds", str(seconds)]
    for flag, value in (("--body", body), ("--cafile", cafile), ("--host", host)):
        if value is not None:
            cmd += [flag, str(value)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"constant_rate.py failed: {done.stderr or done.stdout}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--body", type=Path, help="POST this file (JSON)")
    parser.add_argument("--cafile", type=Path, help="CA to verify an https server with")
    parser.add_argument("--connections", type=int, default=10, help="keep-alive pool size")
    parser.add_argument("--host", help="Host header (default: the URL's host:port)")
    args = parser.parse_args()
    context = None
    if args.url.startswith("https:"):
        context = ssl.create_default_context(cafile=str(args.cafile) if args.cafile else None)
        context.check_hostname = False
        if args.cafile is None:
            context.verify_mode = ssl.CERT_NONE
    body = args.body.read_bytes() if args.body else None
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
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
