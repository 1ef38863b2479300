"""One proxy process: listeners, policy and certificate sources, signals, draining.

`Proxy(config).serve()` loads the first policy and certificate, binds every listener (inbound
mTLS per app port, outbound HTTP, outbound TCP per mapped service, admin), and runs until
SIGTERM/SIGINT; one that comes during the first load cancels it, and no listener is opened.
SIGHUP re-reads certificates and policy. On SIGTERM the mesh listeners stop accepting,
`/ready` turns false, idle connections close, and requests in flight get up to
`drain_timeout` seconds to finish. The admin listener stays up until the drain ends, so a
readiness probe gets the 503 `draining` the docs promise (not a refused connection) and the
drain can still be scraped; it closes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proxy import native, tlslayer
from proxy.admin import AdminLimits, AdminProtocol, json_page
from proxy.config import EVERY_ADDRESS, ProxyConfig, ip_family
from proxy.metrics import Metrics
from proxy.policy import ControlPlaneSource, FileSource, PolicyHolder, PolicySourceError
from proxy.routing import InboundRouter, OutboundRouter, PeerIdentities
from proxy.server import HttpProxy
from proxy.state import ServerState
from proxy.tcp import InboundDispatch, InboundTcp, OutboundTcp, recheck_relays
from proxy.tls import (
    CertificateError,
    CsrCertificates,
    FileCertificates,
    WorkloadTLS,
    iso_time,
    read_file,
)
from proxy.token import BearerToken
from proxy.tunnels import TunnelChecks
from proxy.upstream import ConnectionPool, Target
from smi import atomicfile
from smi.compiler.ir.index import PolicyIndex

if TYPE_CHECKING:  # imported when configured: most sidecars use neither (memory)
    from proxy.accesslog import AccessLog
    from proxy.registration import Registrar

log = logging.getLogger("smictl.proxy")


class StartupError(Exception):
    """The proxy cannot start (a port is taken, the CA cannot be read)."""


@dataclass
class Listeners:
    servers: list[asyncio.Server] = field(default_factory=list)  # the mesh listeners
    ports: dict[str, Any] = field(default_factory=dict)
    admin: asyncio.Server | None = None  # closed after the drain, not with the others


class Proxy:
    # How long the first policy (and endpoints) load may take before the proxy serves without
    # it (unready); the source goes on trying in the background.
    first_load_timeout = 5.0

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.state = ServerState()
        self.holder = PolicyHolder(self.metrics, trust_domain=config.identity.trust_domain)
        self.listeners = Listeners()
        self.stopping = asyncio.Event()
        # The workload's token, re-read from --token-file for every CSR and registration: a
        # projected ServiceAccount token expires within the hour (proxy.token).
        self.token = BearerToken(config.token_file, config.token)
        self.tls = self._tls()
        self.cert_error = ""  # the certificate failure last logged (said once while it lasts)
        self.ca_error = ""  # the same for the mesh CA file
        self._ca_sig: tuple[int, int, int] | None = None  # of the --ca file last read
        self.pool = ConnectionPool(connect_timeout=config.connect_timeout, state=self.state)
        self.metrics.pool = self.pool
        self.access_log: AccessLog | None = None
        if config.access_log:
            from proxy.accesslog import AccessLog

            self.access_log = AccessLog.open(config.access_log, sample=config.access_log_sample)
        self.policy_source: FileSource | ControlPlaneSource = self._policy_source()
        self.endpoints_source = (
            FileSource(
                config.endpoints, self.holder, kind="endpoints", interval=config.watch_interval
            )
            if config.endpoints
            else None
        )
        self.certs: FileCertificates | CsrCertificates = self._cert_source()
        self.state.on_tick.append(self.pool.sweep)
        # A new policy (file, long poll, SIGHUP) also applies to the L4 relays and the upgraded
        # HTTP connections (WebSockets) already open: they were authorized once, at connect or
        # at the upgrade request (proxy.tcp, proxy.tunnels).
        self.holder.on_change.append(self._recheck_relays)
        self.holder.on_change.append(TunnelChecks(self.state))
        self.registrar: Registrar | None = None

    def _tls(self) -> WorkloadTLS:
        cfg = self.config
        where = f"--ca {cfg.ca}" if cfg.ca is not None else "--ca-pem"
        try:
            ca_pem = read_file(cfg.ca) if cfg.ca is not None else (cfg.ca_pem or "").encode()
        except OSError as exc:
            raise StartupError(f"{where}: {exc.strerror}") from exc
        control_plane_ca: bytes | None = None
        try:
            if cfg.control_plane_ca is not None:
                control_plane_ca = read_file(cfg.control_plane_ca)
            elif cfg.control_plane_ca_pem:
                control_plane_ca = cfg.control_plane_ca_pem.encode()
        except OSError as exc:
            raise StartupError(
                f"--control-plane-ca {cfg.control_plane_ca}: {exc.strerror}"
            ) from exc
        try:
            return WorkloadTLS(
                identity=cfg.identity,
                ca_pem=ca_pem,
                metrics=self.metrics,
                control_plane_ca_pem=control_plane_ca,
            )
        except (CertificateError, ValueError) as exc:
            raise StartupError(f"{where}: {exc}") from exc
        except OSError as exc:  # the private directory for the key (proxy.tls._private_dir)
            raise StartupError(
                f"cannot make a private directory for the workload key in "
                f"{os.path.dirname(exc.filename or '')}: {exc.strerror} (set TMPDIR to a "
                "writable directory, in memory if possible)"
            ) from exc

    def _policy_source(self) -> FileSource | ControlPlaneSource:
        cfg = self.config
        if cfg.policy_is_url:
            ctx = self.tls.control_plane_context() if _https(cfg.policy) else None
            return ControlPlaneSource(cfg.policy, self.holder, ssl_context=ctx, token=self.token)
        return FileSource(cfg.policy, self.holder, interval=cfg.watch_interval)

    def _cert_source(self) -> FileCertificates | CsrCertificates:
        cfg = self.config
        if cfg.csr_url:
            ctx = self.tls.control_plane_context() if _https(cfg.csr_url) else None
            return CsrCertificates(self.tls, url=cfg.csr_url, token=self.token, ssl_context=ctx)
        assert cfg.cert is not None and cfg.key is not None
        return FileCertificates(self.tls, cert=cfg.cert, key=cfg.key)

    def _recheck_relays(self, index: PolicyIndex) -> None:
        recheck_relays(self.state, index)

    # --- readiness and admin pages ----------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.holder.index is not None and self.tls.ready and not self.state.draining

    def _pages(self) -> dict[str, Any]:
        def metrics() -> tuple[int, str, bytes]:
            return 200, "text/plain; version=0.0.4", self.metrics.render().encode()

        def ready() -> tuple[int, str, bytes]:
            missing = [
                name
                for name, ok in (
                    ("policy", self.holder.index is not None),
                    ("certificate", self.tls.ready),
                    ("draining", not self.state.draining),
                )
                if not ok
            ]
            if missing:
                return 503, "text/plain", f"not ready: {', '.join(missing)}\n".encode()
            return 200, "text/plain", b"ready\n"

        return {
            "/metrics": metrics,
            "/ready": ready,
            "/config": lambda: json_page(200, self.describe()),
        }

    def describe(self) -> dict[str, Any]:
        policy = self.holder.policy
        not_after = self.tls.not_after
        return {
            "identity": self.config.identity.spiffe_id,
            "ready": self.ready,
            "policy": None
            if policy is None
            else {
                "revision": policy.revision,
                "hash": policy.hash,
                "mode": policy.mode,
                "source": self.holder.source,
            },
            "certificate": None if not_after is None else {"notAfter": iso_time(not_after)},
            "listeners": self.listeners.ports,
            "requestPath": native.state(),  # "compiled" (mypyc) or "pure: <why>"
        }

    # --- listeners ----------------------------------------------------------------------------

    async def _listen(
        self, factory: Any, host: str, port: int, *, admin: bool = False, **kw: Any
    ) -> int:
        loop = asyncio.get_running_loop()
        try:
            sock = _bound_socket(host, port)
            if sock is not None:
                server = await loop.create_server(factory, sock=sock, backlog=1024, **kw)
            else:
                server = await loop.create_server(
                    factory, host, port, backlog=1024, reuse_address=True, **kw
                )
        except OSError as exc:
            where = f"[{host}]" if ":" in host else host
            raise StartupError(f"cannot listen on {where}:{port}: {exc.strerror}") from exc
        if admin:
            self.listeners.admin = server
        else:
            self.listeners.servers.append(server)
        port_bound: int = server.sockets[0].getsockname()[1]
        return port_bound

    async def _start_listeners(self) -> None:
        cfg, ports = self.config, self.listeners.ports
        peers = PeerIdentities(trust_domain=cfg.identity.trust_domain)
        limits = cfg.limits
        inbound: dict[str, int] = {}
        for spec in cfg.inbound:
            router = InboundRouter(
                identity=cfg.identity.spiffe_id,
                app=Target(cfg.app_host, spec.app_port),
                app_port=spec.app_port,
                policy=self.holder,
                metrics=self.metrics,
                peers=peers,
            )
            factory = self._tls_factory(
                self._inbound_factory(router), handshake_timeout=limits.header_timeout
            )
            inbound[str(spec.app_port)] = await self._listen(factory, cfg.bind, spec.port)
        ports["inbound"] = inbound
        outbound = OutboundRouter(
            namespace=cfg.identity.namespace, policy=self.holder, tls=self.tls, metrics=self.metrics
        )
        if cfg.outbound is not None:
            ports["outbound"] = await self._listen(
                lambda: HttpProxy(
                    router=outbound,
                    pool=self.pool,
                    state=self.state,
                    limits=limits,
                    direction="outbound",
                    access_log=self.access_log,
                ),
                cfg.outbound_bind,
                cfg.outbound,
            )
        tcp_ports: dict[str, int] = {}
        for tspec in cfg.outbound_tcp:
            tcp_ports[tspec.service] = await self._listen(
                lambda s=tspec.service: OutboundTcp(
                    router=outbound, service=s, state=self.state, timeout=cfg.connect_timeout
                ),
                cfg.outbound_bind,
                tspec.port,
            )
        ports["outbound_tcp"] = tcp_ports
        if cfg.admin is not None:
            pages, bounds = self._pages(), AdminLimits()
            ports["admin"] = await self._listen(
                lambda: AdminProtocol(pages, bounds), cfg.admin_bind, cfg.admin, admin=True
            )

    def _tls_factory(self, factory: Any, *, handshake_timeout: float) -> Any:
        """`tlslayer.server_factory`, with the server context read for every connection: a
        reloaded mesh CA replaces it (`WorkloadTLS.use_ca`)."""
        tls = self.tls

        def make() -> tlslayer.TlsLayer:
            return tlslayer.TlsLayer(
                tls.server, server_side=True, factory=factory, handshake_timeout=handshake_timeout
            )

        return make

    def _inbound_factory(self, router: InboundRouter) -> Any:
        cfg = self.config

        def http() -> HttpProxy:
            return HttpProxy(
                router=router,
                pool=self.pool,
                state=self.state,
                limits=cfg.limits,
                direction="inbound",
                access_log=self.access_log,
            )

        def tcp() -> InboundTcp:
            return InboundTcp(router=router, state=self.state, timeout=cfg.connect_timeout)

        return lambda: InboundDispatch(router=router, state=self.state, http=http, tcp=tcp)

    # --- sources ------------------------------------------------------------------------------

    async def _first_load(self) -> None:
        try:
            await self._refresh_certs(force=True)
        except CertificateError as exc:
            self.cert_error = str(exc)
            log.error("certificate: %s (not ready until one loads)", exc)
        for source in (self.endpoints_source, self.policy_source):
            if source is None:
                continue
            try:
                async with asyncio.timeout(self.first_load_timeout):
                    await source.load()
            except TimeoutError:  # (prints as nothing: `exc or ...` took the exception itself)
                log.error(
                    "policy: timed out after %gs (not ready until one loads)",
                    self.first_load_timeout,
                )
            except PolicySourceError as exc:
                log.error("policy: %s (not ready until one loads)", exc)

    async def _refresh_certs(self, *, force: bool = False) -> bool:
        if isinstance(self.certs, CsrCertificates):
            return await self.certs.refresh(force=force)
        return self.certs.refresh(force=force)

    async def _cert_loop(self) -> None:
        """Files: look for changes every watch interval. CSR: renew at 2/3 of the lifetime."""
        failures = 0
        while True:
            if isinstance(self.certs, FileCertificates):
                delay = self.config.watch_interval
            elif not self.tls.ready or failures:
                delay = min(30.0, 0.5 * 2**failures)
            else:
                delay = self.tls.next_renewal()
            await asyncio.sleep(delay)
            csr = isinstance(self.certs, CsrCertificates)
            try:
                await self._refresh_certs(force=csr)
            except CertificateError as exc:
                failures = min(failures + 1, 6)
                # A file still missing, or one refused and tried again at every tick (not yet
                # valid): said once, not every second.
                if str(exc) != self.cert_error or exc.new_files:
                    self.cert_error = str(exc)
                    kept = "keeping the current one" if self.tls.ready else "none loaded: not ready"
                    log.error("certificate refresh failed: %s; %s", exc, kept)
                continue
            self.cert_error = ""
            if csr and self.tls.next_renewal(jitter=0.0) <= 0.0:
                # The control plane answered a certificate already past its renewal point (the
                # same one again, or a short lifetime under a backdated start): asking again at
                # once would send a new key and CSR as fast as it answers. Back off instead.
                failures = min(failures + 1, 6)
                log.warning(
                    "the control plane's certificate is already due for renewal; asking again "
                    "in %.0f s",
                    min(30.0, 0.5 * 2**failures),
                )
            else:
                failures = 0

    def reload(self) -> None:
        """SIGHUP."""
        log.info("SIGHUP: reloading certificates and policy")
        self._reload_ca(force=True)  # first: the certificate is checked against it
        self.policy_source.reload()
        if self.endpoints_source is not None:
            self.endpoints_source.reload()
        self.state.spawn(self._reload_certs())

    def _reload_ca(self, *, force: bool = False) -> bool:
        """Re-read the mesh CA bundle (`--ca`) if the file changed (or `force`: SIGHUP), and
        trust the new one from now on; True when it changed. One that cannot be read or used
        is refused with a log line, and the one in use stays."""
        path = self.config.ca
        if path is None:  # --ca-pem: nothing to re-read
            return False
        try:
            st = os.stat(path)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
            if sig == self._ca_sig and not force:
                return False
            pem = read_file(path)
        except OSError as exc:  # looked at again next time; said once (or on SIGHUP)
            problem = f"cannot read it: {exc.strerror}"
            if force or problem != self.ca_error:
                log.error("mesh CA --ca %s: %s; keeping the current one", path, problem)
            self.ca_error = problem
            return False
        self._ca_sig, self.ca_error = sig, ""
        try:
            changed = self.tls.use_ca(pem)
        except CertificateError as exc:  # (read once per change of the file: said each time)
            log.error("mesh CA --ca %s: %s; keeping the current one", path, exc)
            return False
        if changed:
            log.info("mesh CA --ca %s reloaded: new connections trust this bundle", path)
            self._follow_control_plane_context()
        return changed

    def _follow_control_plane_context(self) -> None:
        """The control plane's clients take the control-plane context anew (it follows the
        mesh CA when no CA of its own was given)."""
        ctx = self.tls.control_plane_context()
        # (None where the URL is http: nothing to verify.)
        policy, certs, registrar = self.policy_source, self.certs, self.registrar
        if isinstance(policy, ControlPlaneSource) and policy.ssl_context is not None:
            policy.ssl_context = ctx
        if isinstance(certs, CsrCertificates) and certs.ssl_context is not None:
            certs.ssl_context = ctx
        if registrar is not None and registrar.ssl_context is not None:
            registrar.ssl_context = ctx

    async def _ca_loop(self) -> None:
        """The mesh CA file is looked at every watch interval, as certificate files are."""
        while True:
            await asyncio.sleep(self.config.watch_interval)
            self._reload_ca()

    async def _reload_certs(self) -> None:
        try:
            await self._refresh_certs(force=True)
        except CertificateError as exc:
            kept = "keeping the current one" if self.tls.ready else "none loaded: not ready"
            log.error("certificate reload failed: %s; %s", exc, kept)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> bool:
        """Load the first certificate and policy, then open the listeners and start the
        sources. False, with no listener opened, when a stop signal came first: the first load
        can take a while (a CSR may wait 15 s for a control plane that does not answer, a
        policy 5 s more), and a proxy told to stop then has nothing to serve or drain."""
        if not await self._unless_stopped(self._first_load()) or self.stopping.is_set():
            log.info("stopped during start-up: no listener opened")
            return False
        await self._start_listeners()
        self.state.start()
        self.state.spawn(self.policy_source.run())
        if self.endpoints_source is not None:
            self.state.spawn(self.endpoints_source.run())
        self.state.spawn(self._cert_loop())
        if self.config.ca is not None:
            self.state.spawn(self._ca_loop())
        self._register()
        if self.config.ports_file is not None:
            _write_atomically(self.config.ports_file, json.dumps(self.listeners.ports))
        log.info(
            "proxy %s listening: %s (request path: %s)",
            self.config.identity,
            self.listeners.ports,
            native.state(),
        )
        return True

    async def _unless_stopped(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` to its end, or until a stop signal, which cancels it; whether it ended."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            return False
        task.result()  # (its exception, if it raised one)
        return True

    def _register(self) -> None:
        cfg = self.config
        base = cfg.control_plane_url
        if not cfg.register or base is None:
            return
        from proxy.registration import Registrar, Registration

        address = cfg.advertise_address or cfg.bind
        inbound = self.listeners.ports["inbound"]
        entries = [
            Registration(address, inbound[str(port)], services) for port, services in cfg.register
        ]
        ctx = self.tls.control_plane_context() if _https(base) else None
        self.registrar = Registrar(
            url=f"{base}/mesh/v1/endpoints", token=self.token, ssl_context=ctx, entries=entries
        )
        self.state.spawn(self.registrar.run())

    async def shutdown(self) -> None:
        started = time.monotonic()
        for server in self.listeners.servers:
            server.close()
        if self.registrar is not None:  # stop being picked before draining
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3.0):
                    await self.registrar.deregister()
        clean = await self.state.drain(self.config.drain_timeout)
        log.info(
            "drained in %.2fs%s",
            time.monotonic() - started,
            "" if clean else " (timed out; closing the rest)",
        )
        for conn in list(self.state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        await self.state.stop()
        self.pool.close_all()
        for server in self.listeners.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        admin = self.listeners.admin
        if admin is not None:  # last: /ready and /metrics answered through the drain
            admin.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin.wait_closed(), 1.0)
        self.tls.cleanup()
        if self.access_log is not None:
            self.access_log.close()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            if await self.start():
                await self.stopping.wait()
        finally:
            await self.shutdown()


def _https(url: str) -> bool:
    """Whether `url` is https in any spelling (`HTTPS://` too, RFC 3986 §3.1): such a URL is
    verified against the control plane's CA, not the system's."""
    return url[:8].lower() == "https://"


def _bound_socket(host: str, port: int) -> socket.socket | None:
    """A listening-ready socket for an IP literal or `*`, bound here instead of by the loop:
    the loop would resolve even a literal through getaddrinfo, which starts libuv's resolver
    threads and loads the IDNA codec (measured: 0.4 MB resident for a one-time lookup).
    None for a host name (the loop resolves it)."""
    if host == EVERY_ADDRESS:
        return _every_address_socket(port)
    family = ip_family(host)
    return None if family is None else _bind(family, host, port)


# What binding `::` fails with where the kernel has no IPv6 (booted with ipv6.disable=1), or
# a sandbox offers none: the pod then has IPv4 addresses only.
_NO_IPV6 = frozenset({errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.EADDRNOTAVAIL})


def _every_address_socket(port: int) -> socket.socket:
    """One socket on every address of the network namespace, of both families: `::` with
    IPV6_V6ONLY off, so IPv4 peers arrive too (as ::ffff:a.b.c.d), whatever the
    net.ipv6.bindv6only default; 0.0.0.0 where there is no IPv6. One socket, not one per
    family: `::` and 0.0.0.0 on one port collide unless `::` is IPv6-only, and a pod whose
    IPv6 is missing would then fail on the second bind."""
    try:
        return _bind(socket.AF_INET6, "::", port, v6only=False)
    except OSError as exc:
        if exc.errno not in _NO_IPV6:
            raise
        log.info("no IPv6 here (%s): listening on 0.0.0.0:%d only", exc.strerror, port)
    return _bind(socket.AF_INET, "0.0.0.0", port)  # noqa: S104 - the pod's own netns


def _bind(family: int, host: str, port: int, *, v6only: bool | None = None) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _write_atomically(path: str, text: str) -> None:
    """Readers of the ports file see the whole of it or none (a rename, not a rewrite), and
    the temporary file is a new one (smi.atomicfile): a predictable `FILE.tmp` was followed
    if someone had made it a symlink, and written into if they had made it and held it."""
    atomicfile.write_atomically(path, text.encode("utf-8"), mode=atomicfile.new_file_mode())
