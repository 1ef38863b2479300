"""The floor of the proxy's stack: what one hop costs when it does nothing but relay.

    python bench/bench_floor.py [--rounds N] [--seconds S]

Issue 5 asks the smictl hop for >= 0.8x nginx's throughput, and on some machines it stays
under (docs/proxy.md, Performance). This run tells the two possible causes apart: the stack
(CPython driving uvloop and httptools) or the work the proxy does per request on it. Three
hops in front of the same nginx app, one process each, wrk -t1 -c32, rounds interleaved:

    nginx    nginx as a reverse proxy with upstream keep-alive (as in bench_proxy.py)
    bare     `bare_relay` below: uvloop + httptools in interpreted Python, parsing both
             directions and pooling upstream connections, but relaying each head as it came:
             no routing, authorization, split, header rules, metrics, deadlines or limits
    smictl   the plain hop of bench_proxy.py (the proxy's compiled request path, its routers
             and metrics)

For each: requests/s and the user and system CPU microseconds per request of the hop process
(/proc/PID/stat around each wrk round). Writes bench/results/floor.json. The bare relay is a
measuring stick only: it trusts its input and is not safe to put in front of anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_proxy as bp

RESULTS = bp.REPO / "bench" / "results" / "floor.json"


# --- the bare relay (run in its own process with --serve-bare) ---------------------------------


def bare_relay(listen_port: int, app_port: int) -> None:
    """One request per read, as wrk sends them; the response goes back as the app wrote it."""
    import httptools
    import uvloop

    idle: list[Upstream] = []

    class Upstream(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.client: Client | None = None
            self.transport: Any = None
            self.pieces: list[bytes] = []

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.pieces.append(data)
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            client, self.client = self.client, None
            pieces, self.pieces = self.pieces, []
            idle.append(self)
            if client is not None and client.transport is not None:
                client.transport.write(b"".join(pieces))

        def connection_lost(self, exc: Exception | None) -> None:
            if self in idle:
                idle.remove(self)

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.transport: Any = None
            self.request = b""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def connection_lost(self, exc: Exception | None) -> None:
            self.transport = None

        def data_received(self, data: bytes) -> None:
            self.request = data
            self.parser.feed_data(data)

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            pass

        def on_message_complete(self) -> None:
            if idle:
                upstream = idle.pop()
                upstream.client = self
                upstream.transport.write(self.request)
            else:
                asyncio.get_running_loop().create_task(self._dial(self.request))

        async def _dial(self, request: bytes) -> None:
            loop = asyncio.get_running_loop()
            _, upstream = await loop.create_connection(Upstream, "127.0.0.1", app_port)
            upstream.client = self
            upstream.transport.write(request)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Client, "127.0.0.1", listen_port, backlog=1024)
        await asyncio.Event().wait()

    uvloop.run(serve())


# --- the driver -------------------------------------------------------------------------------


def user_sys_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def measure(url: str, pid: int, seconds: int) -> dict[str, float]:
    u0, s0 = user_sys_ticks(pid)
    result = bp.wrk(url, seconds)
    u1, s1 = user_sys_ticks(pid)
    us_per_tick = 1e6 / os.sysconf("SC_CLK_TCK")
    n = max(1, int(result["requests"]))
    return {
        "rps": result["rps"],
        "user_us": (u1 - u0) * us_per_tick / n,
        "sys_us": (s1 - s0) * us_per_tick / n,
    }


def run(rounds: int, seconds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        work = Path(tmp)
        procs = bp.Procs(work)
        try:
            app, ngx, bare = bp.free_port(), bp.free_port(), bp.free_port()
            topo = bp.Topologies.__new__(bp.Topologies)  # only its nginx() helper
            topo.procs = procs
            answer = 'location / { return 200 "hello world\\n"; }'
            topo.nginx("app", f"server {{ listen 127.0.0.1:{app}; {answer} }}")
            plain = {"ssl": "", "server_extra": "", "scheme": "http", "upstream": "app"}
            topo.nginx("nginx", bp.PROXY.format(**plain, extra="", port=ngx, to=app))
            me = [sys.executable, str(Path(__file__).resolve())]
            procs.start("bare", [*me, "--serve-bare", str(bare), str(app)])
            serve = [sys.executable, str(bp.REPO / "bench" / "bench_proxy.py"), "--serve-plain"]
            hop = procs.start("smictl", [*serve, str(work / "plain.json"), "--app-port", str(app)])
            for port in (app, ngx, bare):
                bp.wait_for(lambda p=port: bp.listening(p), f"a listener on {port}")
            ports = bp.wait_for(lambda: bp.read_json(work / "plain.json"), "the smictl hop")
            urls = {
                "nginx": (f"http://127.0.0.1:{ngx}{bp.PATH}", procs.procs["nginx"].pid),
                "bare": (f"http://127.0.0.1:{bare}{bp.PATH}", procs.procs["bare"].pid),
                "smictl": (f"http://127.0.0.1:{ports['port']}{bp.PATH}", hop.pid),
            }
            for url, _ in urls.values():  # warm-up: pools filled, code paths touched
                bp.wrk(url, 1)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
            for r in range(rounds):
                for name, (url, pid) in urls.items():
                    runs[name].append(measure(url, pid, seconds))
                    last = runs[name][-1]
                    print(
                        f"round {r + 1} {name:7} {last['rps']:9.0f} rps  user "
                        f"{last['user_us']:5.2f} us  sys {last['sys_us']:5.2f} us per request",
                        flush=True,
                    )
        finally:
            procs.stop_all()
    med = {
        name: {key: statistics.median(x[key] for x in rs) for key in rs[0]}
        for name, rs in runs.items()
    }
    return {
        "method": f"wrk -t1 -c32 -d{seconds}s, {rounds} interleaved rounds; medians; CPU of the "
        "hop process from /proc/PID/stat; request path of the smictl hop: "
        f"{ports['requestPath']}",
        "medians": med,
        "rounds": runs,
        "ratios_to_nginx": {
            name: round(m["rps"] / med["nginx"]["rps"], 3) for name, m in med.items()
        },
    }


def main() -> int:
    if sys.argv[1:2] == ["--serve-bare"]:
        bare_relay(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk round")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y nginx-light wrk")
    result = run(max(1, args.rounds), max(1, args.seconds))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"medians": result["medians"], "ratios": result["ratios_to_nginx"]}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
