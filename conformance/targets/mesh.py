"""A small real mesh on 127.0.0.0/8: test apps, one `smictl proxy` per workload, mTLS between
proxies, endpoints registered with the control plane — for the proxy target and the demo.

Each workload slot gets its own loopback address (127.77.0.N) for its app, so an app can listen
on the very port a scenario names (8080, 9090, ...) without clashing with anything on 127.0.0.1;
the proxies themselves listen on 127.0.0.1, port 0, and report their ports in a ports file.
A proxy authorizes on the app port, so logical ports are real here. Each proxy gets its
certificate the way a sidecar does: it sends a CSR to the control plane, proving its identity
with a bootstrap token bound to its ServiceAccount (`certificates="files"` hands it a
certificate from the mesh CA instead).

The apps live in this process (one thread per listener) and answer every request with the name
of the workload they currently play and the caller identity the proxy passed in
`x-smi-source-identity`, with every value of that header under any spelling a CGI or WSGI app
reads as the same variable (`X_Smi_Source_Identity`), so a forged copy that got through shows;
a slot can play different workloads in different scenarios. A
connection that opens with `TCP_PROBE` instead of an HTTP request line is raw TCP: the app
answers it with one JSON line naming the workload and echoing the probe, so TCP steps carry
bytes no HTTP parser accepts.
"""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conformance.targets.base import TargetError
from conformance.targets.controlplane import ControlPlane
from conformance.targets.processes import LAUNCH, Child, spawn, stop_all, wait_for
from smi.pki import WORKLOAD_TTL, CertificateAuthority

APP_MARK = "x-conformance-workload"
# How many loopback addresses a slot's apps try before giving up (binding fails fast).
ADDRESS_ATTEMPTS = 64
SOURCE_HEADER = "x-smi-source-identity"
# How a raw TCP probe starts: a NUL and bytes outside ASCII, never the start of an HTTP request.
TCP_PROBE = b"\x00\xfesmi-conformance-tcp\xff "
# An expired certificate's lifetime: it ended a minute ago (it began five minutes ago).
EXPIRED = timedelta(minutes=-1)


class _AppHandler(BaseHTTPRequestHandler):
    """Answers anything with 200 and who it is, reading (and discarding) any body."""

    protocol_version = "HTTP/1.1"
    # Headers and body are two writes; with Nagle on, a keep-alive peer's delayed ACK would
    # stall every response by ~40 ms.
    disable_nagle_algorithm = True
    server: _AppServer
    raw_requestline: bytes  # set by BaseHTTPRequestHandler; typeshed does not declare it

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        label = self.server.slot.label
        body = json.dumps(
            {
                "workload": label,
                "identity": self.headers.get(SOURCE_HEADER, ""),
                "identities": [
                    v
                    for k, v in self.headers.items()
                    if k.lower().replace("_", "-") == SOURCE_HEADER
                ],
                "port": self.server.server_address[1],
                "path": self.path,
            }
        ).encode()
        self.send_response(200)
        self.send_header(APP_MARK, label)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _answer
    do_TRACE = do_CONNECT = _answer

    def parse_request(self) -> bool:
        """A raw TCP probe is answered here, before HTTP parsing would send a 400 for it."""
        if not self.raw_requestline.startswith(TCP_PROBE):
            return super().parse_request()
        answer = {
            "workload": self.server.slot.label,
            "port": self.server.server_address[1],
            "echo": self.raw_requestline.hex(),
        }
        self.wfile.write(json.dumps(answer).encode() + b"\n")
        self.close_connection = True
        return False  # handled: BaseHTTPRequestHandler sends nothing more

    def log_message(self, format: str, *args: Any) -> None:
        return


class _AppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], slot: Slot) -> None:
        self.slot = slot
        super().__init__(address, _AppHandler)


@dataclass
class Slot:
    """One running workload: an identity, its app address and ports, its proxy."""

    identity: str
    index: int
    address: str
    ports: tuple[int, ...]
    label: str = ""
    child: Child | None = None
    listeners: dict[str, Any] = field(default_factory=dict)
    apps: list[_AppServer] = field(default_factory=list)
    token_file: Path | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.identity, self.index

    @property
    def outbound(self) -> int:
        return int(self.listeners["outbound"])

    @property
    def admin(self) -> int:
        return int(self.listeners["admin"])

    def inbound(self, app_port: int) -> int:
        return int(self.listeners["inbound"][str(app_port)])


class Mesh:
    """Slots started on demand and kept for the whole run; `stop()` ends every one."""

    def __init__(self, plane: ControlPlane, workdir: Path, *, certificates: str = "csr") -> None:
        self.plane = plane
        self.workdir = workdir
        self.certificates = certificates
        self.slots: dict[tuple[str, int], Slot] = {}
        self._next_ip = 1
        self._foreign_ca: CertificateAuthority | None = None

    # --- slots -----------------------------------------------------------------------------------

    def slot(self, identity: str, index: int, ports: tuple[int, ...]) -> Slot:
        """The running slot `(identity, index)`, started with `ports` if it is not running.

        A slot that fails to start is ended and forgotten, so the next scenario starts it
        afresh instead of finding a slot without listeners."""
        key = (identity, index)
        existing = self.slots.get(key)
        preferred = None
        if existing is not None:
            missing = set(ports) - set(existing.ports)
            if not missing:
                return existing
            self._stop_slot(existing)  # restart with every port it has been asked for
            del self.slots[key]
            ports = tuple(sorted(set(existing.ports) | missing))
            preferred = existing.address
        slot = Slot(identity=identity, index=index, address="", ports=ports)
        try:
            self._start_apps(slot, preferred=preferred)
            self._start_proxy(slot)
        except BaseException:
            self._stop_slot(slot)
            raise
        self.slots[key] = slot
        return slot

    def _addresses(self, preferred: str | None) -> list[str]:
        """Loopback addresses to try for a slot's apps: the one it had, then fresh ones."""
        out = [preferred] if preferred else []
        while len(out) < ADDRESS_ATTEMPTS:
            n = self._next_ip
            self._next_ip += 1
            out.append(f"127.77.{n // 250}.{n % 250 + 1}")
        return out

    def _start_apps(self, slot: Slot, *, preferred: str | None = None) -> None:
        """Start the slot's apps on the first address where every one of its ports is free.
        Another suite, or the demo, running at the same time counts from the same first
        address; moving on instead of failing keeps them apart."""
        last = ""
        for address in self._addresses(preferred):
            try:
                apps = _bind_apps(address, slot)
            except OSError as exc:
                last = f"{address}: {exc.strerror or exc}"
                continue
            slot.address = address
            for app in apps:
                threading.Thread(
                    target=app.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name=f"app-{address}:{app.server_address[1]}",
                    daemon=True,
                ).start()
            # Only serving apps are listed: shutdown() of one never served would wait forever.
            slot.apps = apps
            return
        ports = ", ".join(map(str, slot.ports))
        raise TargetError(
            f"app of {slot.identity} cannot listen on ports {ports} of any of "
            f"{ADDRESS_ATTEMPTS} loopback addresses 127.77.x.y (last: {last}); "
            "is something listening on these ports on all addresses (0.0.0.0)?"
        )

    def _start_proxy(self, slot: Slot) -> None:
        plane = self.plane
        name = f"proxy-{slot.identity.replace('/', '-')}-{slot.index}"
        ports_file = self.workdir / f"{name}.ports.json"
        ports_file.unlink(missing_ok=True)
        slot.token_file = self.workdir / f"{name}.token"
        slot.token_file.write_text(plane.token(slot.identity), encoding="utf-8")
        argv = [
            *LAUNCH,
            "proxy",
            "--identity",
            slot.identity,
            *[a for p in slot.ports for a in ("--inbound", f"0:{p}")],
            "--outbound",
            "0",
            "--admin",
            "0",
            "--policy",
            f"{plane.url}/mesh/v1/policy",
            "--token-file",  # the control plane serves the policy to workloads that prove it
            str(slot.token_file),
            "--ca",
            str(plane.ca_file),
            *self._certificate_args(slot, name),
            "--app-host",
            slot.address,
            "--ports-file",
            str(ports_file),
            "--log-level",
            "warning",
        ]
        slot.child = spawn(name, argv, log_dir=self.workdir)
        slot.listeners = wait_for(
            lambda: _read_json(ports_file), what=f"{name} to listen", watch=[slot.child]
        )
        wait_for(
            lambda: True if self.admin_get(slot, "/ready")[0] == 200 else None,
            what=f"{name} to be ready",
            watch=[slot.child],
        )

    def _certificate_args(self, slot: Slot, name: str) -> list[str]:
        """`csr`: the proxy asks the control plane to sign its key, proving its identity with
        its bootstrap token; `files`: a certificate the mesh CA issued, read from files."""
        if self.certificates == "csr":  # with the --token-file the policy poll sends too
            return ["--csr-url", f"{self.plane.url}/mesh/v1/certificates"]
        cert, key = self.workload_certificate(slot.identity, prefix=name)
        return ["--cert", str(cert), "--key", str(key)]

    def _stop_slot(self, slot: Slot) -> None:
        _close_apps(slot.apps)
        slot.apps.clear()
        if slot.child is not None:
            slot.child.stop()

    def stop(self) -> None:
        for slot in self.slots.values():
            _close_apps(slot.apps)
        stop_all([s.child for s in self.slots.values() if s.child is not None])
        self.slots.clear()

    # --- endpoints and policy propagation ------------------------------------------------------

    def register(self, slot: Slot, services: tuple[str, ...], *, app_port: int) -> None:
        """Register the slot's inbound listener for `app_port` as an endpoint of `services`
        (what a proxy does in local mode), with the workload's own bootstrap token."""
        body = {"address": "127.0.0.1", "port": slot.inbound(app_port), "services": list(services)}
        self._endpoint("POST", slot, body)

    def deregister(self, slot: Slot, *, app_port: int) -> None:
        body = {"address": "127.0.0.1", "port": slot.inbound(app_port)}
        self._endpoint("DELETE", slot, body, missing_ok=True)

    def _endpoint(
        self, method: str, slot: Slot, body: dict[str, Any], *, missing_ok: bool = False
    ) -> None:
        assert slot.token_file is not None
        token = slot.token_file.read_text(encoding="utf-8").strip()
        reply = self.plane.request(
            method, "/mesh/v1/endpoints", body=body, headers={"Authorization": f"Bearer {token}"}
        )
        if reply.status != 200 and not (missing_ok and reply.status in (404, 405)):
            raise TargetError(
                f"{method} /mesh/v1/endpoints for {slot.identity}: "
                f"HTTP {reply.status}: {reply.body}"
            )

    def settle(self, slots: list[Slot] | None = None, *, timeout: float = 15.0) -> str:
        """Wait until every proxy (or `slots`) enforces the policy the control plane serves."""
        etag, _ = self.plane.policy()
        want = etag.strip('"').removeprefix("W/").strip('"')
        targets = list(self.slots.values()) if slots is None else slots

        def current() -> bool | None:
            for slot in targets:
                status, body = self.admin_get(slot, "/config")
                policy = json.loads(body).get("policy") if status == 200 else None
                if not policy or policy.get("hash") != want:
                    return None
            return True

        wait_for(
            current,
            what=f"proxies to enforce policy {want[:19]}",
            timeout=timeout,
            watch=[s.child for s in targets if s.child is not None],
        )
        return want

    def admin_get(self, slot: Slot, path: str) -> tuple[int, bytes]:
        try:
            with socket.create_connection(("127.0.0.1", slot.admin), timeout=5) as sock:
                sock.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n".encode()
                )
                raw = _read_all(sock)
        except OSError:
            return 0, b""
        head, _, body = raw.partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return 0, b""
        return status, body

    def counter(self, slots: list[Slot], *families: str) -> int:
        """The sum of these metric families over the proxies of `slots`."""
        total = 0
        for slot in slots:
            _, body = self.admin_get(slot, "/metrics")
            for line in body.decode(errors="replace").splitlines():
                if line.startswith(families):
                    total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def would_deny(self, slots: list[Slot]) -> int:
        """Audit mode: what these proxies would have denied."""
        return self.counter(
            slots, "inbound_http_authz_would_deny_total", "inbound_tcp_authz_would_deny_total"
        )

    def denies(self, slots: list[Slot]) -> int:
        """What these proxies denied, HTTP requests and L4 connections."""
        return self.counter(slots, "inbound_http_authz_deny_total", "inbound_tcp_authz_deny_total")

    # --- certificates for direct connections --------------------------------------------------

    def workload_certificate(self, identity: str, *, prefix: str) -> tuple[Path, Path]:
        """A certificate for `identity` signed by the mesh CA, written as PEM files."""
        from smi.identity import Identity
        from webhook.cli import load_ca_dir

        ca = load_ca_dir(self.plane.certs)
        cert, key = ca.issue_workload(Identity.parse(identity))
        cert_file, key_file = self.workdir / f"{prefix}.crt", self.workdir / f"{prefix}.key"
        cert_file.write_bytes(cert)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        return cert_file, key_file

    def client_context(self, identity: str | None, *, certificate: str = "mesh") -> ssl.SSLContext:
        """A TLS client context that trusts the mesh CA and holds a client certificate for
        `identity`: the mesh CA's (`mesh`), one another CA signed (`foreign-ca`), the mesh
        CA's but expired a minute ago (`expired`), or none (`none`, `identity` None)."""
        from smi.identity import Identity
        from webhook.cli import load_ca_dir

        ctx = ssl.create_default_context(cafile=str(self.plane.ca_file))
        ctx.check_hostname = False  # workload certificates name SPIFFE ids, not hosts
        if certificate == "none" or identity is None:
            return ctx
        ca = load_ca_dir(self.plane.certs)
        ttl = EXPIRED if certificate == "expired" else WORKLOAD_TTL
        if certificate == "foreign-ca":
            if self._foreign_ca is None:
                self._foreign_ca = CertificateAuthority.create(common_name="not the mesh CA")
            ca = self._foreign_ca
        cert, key = ca.issue_workload(Identity.parse(identity), ttl=ttl)
        with tempfile.TemporaryDirectory(prefix="smictl-client-") as tmp:
            cert_file, key_file = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
            cert_file.write_bytes(cert)
            key_file.write_bytes(key)
            ctx.load_cert_chain(str(cert_file), str(key_file))
        return ctx


def _bind_apps(address: str, slot: Slot) -> list[_AppServer]:
    """One app server per port of `slot` on `address`, all or none (OSError)."""
    apps: list[_AppServer] = []
    for port in slot.ports:
        try:
            apps.append(_AppServer((address, port), slot))
        except OSError as exc:
            for app in apps:
                app.server_close()
            raise OSError(exc.errno, f"port {port}: {exc.strerror or exc}") from exc
    return apps


def _close_apps(apps: list[_AppServer]) -> None:
    for app in apps:
        app.shutdown()
        app.server_close()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
