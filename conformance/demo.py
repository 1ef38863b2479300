"""`make demo`: a live SMI mesh on this machine, no cluster needed.

    python -m conformance.demo [--duration SECONDS] [--rate RPS] [--keep]

Starts the embedded control plane (`smictl serve`: gunicorn over TLS, SQLite store) and a shop —
frontend, catalog v1 and v2, payments, and an intruder — each workload behind its own
`smictl proxy` with a certificate for its ServiceAccount. It applies the SMI objects of
`examples/demo/`, drives traffic along five edges through the proxies, and shows, live, what was
allowed and denied per edge, the catalog split as configured and as observed, and the policy
revision each proxy enforces. During the run it applies the files of `examples/demo/changes/`:
a canary jump the admission policy refuses, a 20-point step plus a tighter TrafficTarget, then
50/50 — and the traffic shows the effect. It stops by itself (or on Ctrl-C) and ends every
process it started; with `--keep` it leaves the mesh up, prints its URLs, and waits for Ctrl-C.

Exit status: 0 when the demo ran its course, 1 when the mesh could not start, 128+N when signal
N (SIGINT, SIGTERM, SIGHUP) stopped it, like `smictl conformance run`: a script that runs the
demo must be able to tell a finished demo from an interrupted one.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from conformance.demo_view import Edge, Event, Traffic, render
from conformance.interrupts import Interrupted, stop_on_signals
from conformance.targets.base import TargetError
from conformance.targets.controlplane import ControlPlane
from conformance.targets.mesh import Mesh, Slot

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "demo"

# (label, identity, slot index, services the workload backs)
WORKLOADS = (
    ("frontend", "shop/frontend", 0, ()),
    ("catalog-v1", "shop/catalog", 0, ("catalog", "catalog-v1")),
    ("catalog-v2", "shop/catalog", 1, ("catalog-v2",)),
    ("payments", "shop/payments", 0, ("payments",)),
    ("intruder", "shop/intruder", 0, ()),
)
EDGES = (
    Edge("frontend", "catalog.shop", "GET", "/products/42"),
    Edge("frontend", "payments.shop", "POST", "/charge"),
    Edge("frontend", "payments.shop", "GET", "/admin/stats"),
    Edge("intruder", "payments.shop", "POST", "/charge"),
    Edge("intruder", "catalog.shop", "GET", "/products/42"),
)
# When (as a fraction of the run) each change of examples/demo/changes/ is applied.
CHANGES = ((0.3, "1-jump-to-v2.yaml"), (0.45, "2-step-to-v2.yaml"), (0.7, "3-half-way.yaml"))
APP_PORT = 8080


@dataclass(frozen=True)
class Options:
    duration: float
    rate: float
    keep: bool
    examples: Path
    live: bool


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m conformance.demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=24.0, help="seconds of traffic (default 24)")
    p.add_argument("--rate", type=float, default=15.0, help="requests/s per edge (default 15)")
    p.add_argument("--keep", action="store_true", help="keep the mesh up afterwards, print URLs")
    p.add_argument("--examples", type=Path, default=EXAMPLES, help="the demo's SMI objects")
    p.add_argument("--plain", action="store_true", help="no live redraw (default when not a TTY)")
    a = p.parse_args(argv)
    if a.duration <= 0 or a.rate <= 0:
        p.error("--duration and --rate must be positive")
    return Options(
        duration=a.duration,
        rate=a.rate,
        keep=a.keep,
        examples=a.examples,
        live=sys.stdout.isatty() and not a.plain,
    )


def smictl_command() -> str:
    """How to run smictl from the shell the demo was started in: `make demo` runs it from
    .venv, which is not on PATH, so a bare `smictl` in the printed hint was not found."""
    beside = Path(sys.executable).parent / "smictl"
    return str(beside) if beside.is_file() else f"{sys.executable} -m smi.cli"


class Demo:
    def __init__(self, opts: Options, workdir: Path, out: TextIO) -> None:
        self.opts = opts
        self.out = out
        self.plane = ControlPlane(workdir / "control-plane", workers=1, shipped_policies=True)
        self.mesh = Mesh(self.plane, workdir / "mesh")
        self.slots: dict[str, Slot] = {}
        self.traffic = Traffic(EDGES)
        self.events: list[Event] = []
        self.started = 0.0

    # --- set-up ------------------------------------------------------------------------------

    def start(self) -> None:
        self._say(f"state, certificates and logs in {self.plane.workdir.parent}")
        self._say("starting the control plane (smictl serve, gunicorn over TLS) ...")
        self.plane.start()
        self.mesh.workdir.mkdir(parents=True, exist_ok=True)
        for label, identity, index, services in WORKLOADS:
            self._say(f"starting {label} as {identity} behind smictl proxy ...")
            slot = self.mesh.slot(identity, index, (APP_PORT,))
            slot.label = label
            if services:
                self.mesh.register(slot, services, app_port=APP_PORT)
            self.slots[label] = slot
        self.started = time.monotonic()
        for path in sorted(self.opts.examples.glob("*.yaml")):
            self.apply(path)
        self.mesh.settle()

    def apply(self, path: Path) -> bool:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        reply = self.plane.apply(docs)
        name = path.relative_to(self.opts.examples).as_posix()
        if reply.status == 200:
            revision = reply.body.get("revision") if isinstance(reply.body, dict) else None
            self._event(f"applied {name} (revision {revision})", ok=True)
            return True
        self._event(f"apply {name} DENIED: {_denial(reply.body)}", ok=False)
        return False

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> None:
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=self._drive, args=(edge, stop), daemon=True, name=f"edge-{edge.label}"
            )
            for edge in EDGES
        ]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        pending = list(CHANGES)
        last_frame = 0.0
        try:
            while (elapsed := time.monotonic() - t0) < self.opts.duration:
                if pending and elapsed >= pending[0][0] * self.opts.duration:
                    _, name = pending.pop(0)
                    if self.apply(self.opts.examples / "changes" / name):
                        self.mesh.settle()
                interval = 0.5 if self.opts.live else 4.0
                if time.monotonic() - last_frame >= interval:
                    self.frame(elapsed)
                    last_frame = time.monotonic()
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)
        self.frame(self.opts.duration, final=True)

    def _drive(self, edge: Edge, stop: threading.Event) -> None:
        slot = self.slots[edge.source]
        period = 1.0 / self.opts.rate
        client = self.traffic.client(edge, outbound=slot.outbound)
        next_at = time.monotonic()
        while not stop.is_set():
            client.send()
            next_at += period
            stop.wait(max(0.0, next_at - time.monotonic()))
        client.close()

    def frame(self, elapsed: float, *, final: bool = False) -> None:
        text = render(
            traffic=self.traffic,
            events=self.events,
            policy=self._policy_state(),
            elapsed=elapsed,
            duration=self.opts.duration,
            final=final,
            color=self.opts.live,
            show_events=self.opts.live or final,
        )
        if self.opts.live and not final:
            self.out.write("\x1b[H\x1b[2J" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def _policy_state(self) -> dict[str, Any]:
        """The served policy (revision, split weights) and the revision each proxy enforces."""
        state: dict[str, Any] = {"url": self.plane.url, "proxies": {}}
        try:
            _, body = self.plane.policy()
            doc = json.loads(body)
            state.update(
                revision=doc.get("revision"),
                hash=doc.get("hash", ""),
                mode=doc.get("mode"),
                split=doc.get("splits", {}).get("shop/catalog"),
            )
        except TargetError as exc:
            state["error"] = str(exc)
        for label, slot in self.slots.items():
            status, raw = self.mesh.admin_get(slot, "/config")
            policy = json.loads(raw).get("policy") if status == 200 else None
            state["proxies"][label] = policy.get("revision") if policy else None
        return state

    # --- the end -------------------------------------------------------------------------------

    def keep(self) -> None:
        """Leave everything running and say how to reach it, until Ctrl-C."""
        front, intr = self.slots["frontend"], self.slots["intruder"]
        lines = [
            "",
            "The mesh keeps running. Try it (Ctrl-C ends everything):",
            "",
            f"  control plane   {self.plane.url}   (CA: {self.plane.ca_file})",
            f'  served policy   curl --cacert {self.plane.ca_file} -H "Authorization: Bearer '
            f'$(cat {self.plane.admin_token_file})" {self.plane.url}/mesh/v1/policy',
            f"  allowed         curl -x http://127.0.0.1:{front.outbound} "
            "http://catalog.shop/products/1",
            f"  denied (403)    curl -x http://127.0.0.1:{intr.outbound} "
            "http://catalog.shop/products/1",
            f"  apply a change  {smictl_command()} apply --server {self.plane.url} "
            f"--ca {self.plane.ca_file} "
            f"-f {self.opts.examples / 'changes' / '3-half-way.yaml'}",
            "",
            "  proxy admin (metrics, ready, config):",
            *[
                f"    {label:<11} http://127.0.0.1:{s.admin}/metrics  /config"
                for label, s in self.slots.items()
            ],
        ]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        while True:
            time.sleep(3600)

    def stop(self) -> None:
        self.mesh.stop()
        self.plane.stop()

    # --- output ----------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _event(self, text: str, *, ok: bool) -> None:
        at = time.monotonic() - self.started if self.started else 0.0
        self.events.append(Event(at=at, text=text, ok=ok))
        if not self.opts.live:
            self._say(f"[{at:6.1f}s] {text}")


def _denial(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)
    msgs = [m for d in body.get("denials") or () for m in d.get("messages") or ()]
    return "; ".join(msgs) or str(body.get("error") or body)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    # `kill -USR1` prints every thread's stack: what a demo that does not stop is waiting on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    out = sys.stdout
    # SIGINT, SIGTERM and SIGHUP stop the demo and everything it started (also when it was
    # started from a background job of a non-interactive shell, which leaves SIGINT ignored);
    # a second signal while it stops them is ignored rather than cutting the cleanup short.
    with stop_on_signals(), tempfile.TemporaryDirectory(prefix="smictl-demo-") as tmp:
        demo = Demo(opts, Path(tmp), out)
        try:
            demo.start()
            demo.run()
            if opts.keep:
                demo.keep()
            code = 0
        except Interrupted as exc:
            out.write(f"\ninterrupted by {exc}\n")
            code = exc.exit_code
        except KeyboardInterrupt:  # raised by other means than a signal handler
            out.write("\ninterrupted\n")
            code = 128 + signal.SIGINT
        except TargetError as exc:
            out.write(f"demo failed: {exc}\n")
            code = 1
        finally:
            out.write("stopping every process the demo started ...\n")
            out.flush()
            demo.stop()
    out.write("done\n" if code == 0 else "every process the demo started was stopped\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
