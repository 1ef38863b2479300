"""The MeshPolicy in use, and the sources that replace it: a watched file or the control plane.

`PolicyHolder.index` is the only thing the request path reads (through its `slot`, a compiled
`proxy.state.PolicySlot`): a `PolicyIndex` built off the request path (in a worker thread) and
swapped in by one assignment, so a request sees either the old policy or the new one, never a
mix. A document that does not parse or build is refused and
the last good policy stays; so does a control plane that cannot be reached.

Control-plane contract (DESIGN.md §5): `GET /mesh/v1/policy` with the workload's token
(`Authorization: Bearer`, the one its certificate requests carry: the control plane serves the
policy to workloads that prove who they are); with `If-None-Match: <etag>` the
server holds the request until the policy changes (200 with the JSON MeshPolicy and a new ETag)
or `?timeout=` seconds pass (304). A 304 with `Retry-After` was not held (the server is busy):
the client waits that long before asking again. Whatever policy a 200 carries is installed, also
one of a lower revision: revisions are one control plane's count (the Kubernetes store's follow
resourceVersions plus its own endpoint changes), so replicas and restarts do not share them, and
refusing a lower one would ignore every change until the count caught up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
from collections.abc import Callable
from typing import Any

from proxy.metrics import Metrics
from proxy.state import PolicySlot
from proxy.token import BearerToken
from smi.compiler.ir import Endpoint, MeshPolicy
from smi.compiler.ir.index import PolicyIndex
from smi.compiler.ir.model import MeshPolicyFormatError

log = logging.getLogger("smictl.proxy.policy")

# The largest policy or endpoints file read (the control plane's answers are capped the same
# way, by `proxy.httpclient.MAX_BODY`): a file is read whole into memory.
MAX_FILE = 64 * 1024 * 1024
# An ETag the proxy sends back as it came: RFC 9110 entity-tag characters, and short enough
# to fit any server's header limits (the control plane's are 73 characters).
_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e]{0,200}"')


class PolicySourceError(Exception):
    """A policy or endpoints document cannot be read, parsed or indexed."""


def _build(raw: bytes) -> tuple[MeshPolicy, PolicyIndex]:
    """The policy in `raw` and its index. The document comes from outside the process, so
    whatever it makes the reader or the indexer raise is a refused document: an exception
    escaping here would end the source's loop and freeze the policy for good (`1e400` as a
    number raises OverflowError, deep nesting RecursionError)."""
    try:
        policy = MeshPolicy.from_json(raw)
        return policy, PolicyIndex.build(policy)
    except MeshPolicyFormatError as exc:
        raise PolicySourceError(str(exc)) from exc
    except Exception as exc:  # any shape of document: see the docstring
        raise PolicySourceError(f"MeshPolicy cannot be indexed: {exc!r}") from exc


def parse_endpoints(raw: bytes) -> dict[str, tuple[Endpoint, ...]]:
    """An endpoints file: `{"ns/name": [{"address": ..., "port": ..., "identity": ...}]}`."""
    try:
        doc = json.loads(raw)
        return {
            str(key): tuple(
                Endpoint(
                    address=str(e["address"]), port=int(e["port"]), identity=str(e["identity"])
                )
                for e in eps
            )
            for key, eps in doc.items()
        }
    except Exception as exc:  # any shape of document, as in _build
        raise PolicySourceError(f"endpoints file is invalid: {exc!r}") from exc


class PolicyHolder:
    def __init__(self, metrics: Metrics, *, trust_domain: str | None = None) -> None:
        self.metrics = metrics
        # This proxy's trust domain (its identity's, which its certificate carries and the
        # only one it accepts callers from); None: not checked against the policy's.
        self.trust_domain = trust_domain
        self.slot = PolicySlot()  # what the request path reads (`index`, `endpoints`)
        self.source = ""
        self.on_change: list[Callable[[PolicyIndex], None]] = []

    @property
    def index(self) -> PolicyIndex | None:
        return self.slot.index

    @index.setter
    def index(self, index: PolicyIndex | None) -> None:
        self.slot.index = index

    @property
    def endpoints(self) -> dict[str, tuple[Endpoint, ...]]:
        return self.slot.endpoints

    @endpoints.setter
    def endpoints(self, endpoints: dict[str, tuple[Endpoint, ...]]) -> None:
        self.slot.endpoints = endpoints

    @property
    def policy(self) -> MeshPolicy | None:
        return None if self.index is None else self.index.policy

    async def install(self, raw: bytes) -> bool:
        """Parse and index `raw` in a worker thread, then swap it in. True if it changed."""
        loop = asyncio.get_running_loop()
        try:
            policy, index = await loop.run_in_executor(None, _build, raw)
        except PolicySourceError:
            self.metrics.policy_update("rejected")
            raise
        current = self.policy
        if current is not None and (current.hash, current.revision) == (
            policy.hash,
            policy.revision,
        ):
            self.metrics.policy_update("unchanged")
            return False
        self.index = index
        self.metrics.policy_update("applied", policy.revision)
        log.info("policy revision %d (%s) in use", policy.revision, policy.hash[:19])
        self._check_trust_domain(policy)
        for pattern, why in index.regex_errors.items():
            log.warning("policy: regex %r is not RE2 (%s); its matches never match", pattern, why)
        for hook in self.on_change:
            try:
                hook(index)
            except Exception as exc:  # a hook's bug must not end the source's loop (see _build)
                log.error("policy: revision %d: %s failed: %r", policy.revision, hook, exc)
        return True

    def _check_trust_domain(self, policy: MeshPolicy) -> None:
        """Say so when the policy is for another trust domain. It is installed all the same
        (a policy is never refused for what it says, only for what cannot be read), but every
        identity in it is then one this proxy never serves or accepts: without this line, the
        only sign is that every request is a no-traffic-target."""
        ours = self.trust_domain
        if ours is None or policy.trust_domain == ours:
            return
        log.warning(
            "policy revision %d is for trust domain %r, but this proxy's identity is in %r: "
            "no TrafficTarget in it can match this workload or its callers (requests get "
            "no-traffic-target in deny and audit mode); installed anyway",
            policy.revision,
            policy.trust_domain,
            ours,
        )

    def endpoints_of(self, key: str) -> tuple[Endpoint, ...] | None:
        """Endpoints of service "ns/name": the endpoints file wins over the MeshPolicy."""
        eps = self.endpoints.get(key)
        if eps is not None:
            return eps
        index = self.index
        service = None if index is None else index.service(key)
        return None if service is None else service.endpoints


class _Watched:
    """A file, and whether it changed since the last look (mtime, size, inode)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._sig: tuple[int, int, int] | None = None

    def changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise PolicySourceError(f"{self.path}: {exc.strerror}") from exc
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self._sig:
            return False
        self._sig = sig
        return True

    def forget(self) -> None:
        self._sig = None

    def read(self) -> bytes:
        """The whole file, if it is a regular file of at most MAX_FILE bytes.

        Anything else is refused without reading it: this runs on the event loop, where
        opening a FIFO would block the whole proxy until a writer came, and reading a device
        (a symlink to /dev/zero) would never end."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise PolicySourceError(f"{self.path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise PolicySourceError(f"{self.path}: not a regular file")
                data = f.read(MAX_FILE + 1)
        except OSError as exc:
            raise PolicySourceError(f"{self.path}: {exc.strerror}") from exc
        if len(data) > MAX_FILE:
            raise PolicySourceError(f"{self.path}: larger than {MAX_FILE} bytes")
        return data


class FileSource:
    """A watched file: a MeshPolicy (`kind="policy"`) or an endpoints file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        holder: PolicyHolder,
        *,
        kind: str = "policy",
        interval: float = 1.0,
    ) -> None:
        self.file = _Watched(path)
        self.holder = holder
        self.kind = kind
        self.interval = interval
        self._wake = asyncio.Event()
        self.loaded = False  # a document was taken in: there is a last good one to keep
        self.unreadable: str | None = None  # the error of the last failed read, until one works
        self._repeat = False  # SIGHUP: log the next error even if it is the same one
        if kind == "policy":
            holder.source = os.fspath(path)

    async def load(self) -> None:
        """Read the file if it changed since the last look; PolicySourceError if it is bad."""
        try:
            if not self.file.changed():
                return
            raw = self.file.read()
        except PolicySourceError as exc:
            # Unreadable now (missing, permissions): look again next time, or a fix that leaves
            # mtime, size and inode alone (`chmod`) would go unseen until SIGHUP.
            self.file.forget()
            self.unreadable = str(exc)
            raise
        if self.unreadable is not None:
            self.unreadable = None
            log.info("%s file: %s is readable again", self.kind, self.file.path)
        if self.kind == "policy":
            await self.holder.install(raw)
        else:
            self.holder.endpoints = parse_endpoints(raw)
        self.loaded = True

    def reload(self) -> None:
        """SIGHUP: re-read now, even if the file looks unchanged."""
        self.file.forget()
        self._repeat = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._look()
            try:
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _look(self) -> None:
        """One look at the file. One that cannot be read is read again at every tick (see
        `load`), so its error is logged when it is new, not at every tick: the same line every
        second for as long as a file is missing buries the rest of the log. A document that
        does not parse is read once per change, so its error is always logged."""
        before, repeat = self.unreadable, self._repeat
        self._repeat = False
        try:
            await self.load()
        except PolicySourceError as exc:
            if repeat or self.unreadable is None or self.unreadable != before:
                kept = "keeping the last good one" if self.loaded else f"no {self.kind} loaded yet"
                log.error("%s file: %s; %s", self.kind, exc, kept)


class ControlPlaneSource:
    """Long-polls the control plane; on errors backs off (with jitter) and keeps the policy."""

    def __init__(
        self,
        url: str,
        holder: PolicyHolder,
        *,
        ssl_context: Any = None,
        token: BearerToken | None = None,
        poll_timeout: float = 25.0,
        backoff: tuple[float, float] = (0.2, 15.0),
        min_interval: float = 1.0,
    ) -> None:
        self.url = url
        self.holder = holder
        self.ssl_context = ssl_context
        self.token = token  # read from its file for every poll (proxy.token)
        self.poll_timeout = poll_timeout
        self.backoff = backoff
        self.min_interval = min_interval  # between polls that brought nothing new
        self.etag: str | None = None
        self.failures = 0
        self.pause = 0.0  # Retry-After of the last 304
        self._task: asyncio.Task[bool] | None = None
        self._reloading = False
        holder.source = url

    async def poll_once(self) -> bool:
        """One request; True when a new policy was installed."""
        # Imported here: a proxy whose policy is a file never makes a request (memory).
        from proxy.httpclient import HttpClientError, request

        # Retry-After is one answer's: left set, it would delay every later poll too.
        self.pause = 0.0
        headers = {"accept": "application/json"}
        token = None if self.token is None else self.token()
        if token:
            headers["authorization"] = f"Bearer {token}"
        url = self.url
        if self.etag is not None:
            headers["if-none-match"] = self.etag
            url += ("&" if "?" in url else "?") + f"timeout={self.poll_timeout:g}"
        try:
            resp = await request(
                "GET",
                url,
                headers=headers,
                ssl_context=self.ssl_context,
                deadline=self.poll_timeout + 15.0,
            )
        except HttpClientError as exc:
            raise self._unreachable(f"control plane {self.url}: {exc}") from exc
        if resp.status == 304:
            self.pause = _seconds(resp.headers.get("retry-after"))
            return False
        if resp.status != 200:
            why = _reason(resp.body)
            raise self._unreachable(
                f"control plane {self.url} answered {resp.status}" + (f": {why}" if why else "")
            )
        # A 200 whose document is refused is counted `rejected` by the holder, not also here.
        changed = await self.holder.install(resp.body)
        self.etag = _etag(resp.headers.get("etag"), self.holder.policy)
        return changed

    def _unreachable(self, message: str) -> PolicySourceError:
        """A poll that brought no document (no answer, or not a 200 or 304), counted once as
        `unreachable` where it failed: each poll is counted under one result only."""
        self.holder.metrics.policy_update("unreachable")
        return PolicySourceError(message)

    def reload(self) -> None:
        """SIGHUP: ask again now, for the full policy."""
        self.etag = None
        if self._task is not None and not self._task.done():
            self._reloading = True
            self._task.cancel()

    async def load(self) -> None:
        """The first policy, before serving (raises PolicySourceError)."""
        await self.poll_once()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._task = asyncio.ensure_future(self.poll_once())
            try:
                changed = await self._task
                self.failures = 0
                # A 304 or the same policy at once (the request was not held): not a tight loop.
                idle = 0.0 if changed else self.min_interval - (loop.time() - started)
                if self.pause or idle > 0:
                    await asyncio.sleep(max(self.pause, idle))
            except asyncio.CancelledError:
                if not self._reloading:
                    raise
                self._reloading = False
            except PolicySourceError as exc:  # (counted where it was raised)
                self.failures += 1
                delay = min(self.backoff[1], self.backoff[0] * 2 ** min(self.failures, 10))
                kept = (
                    "keeping the last good policy"
                    if self.holder.index is not None
                    else "no policy loaded yet"
                )
                log.error("%s; %s, retrying in %.1fs", exc, kept, delay)
                import random  # only after a failure (see proxy.routing: memory)

                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311


def _etag(value: str | None, policy: MeshPolicy | None) -> str | None:
    """The ETag to send back: the server's if it is a well-formed, short entity tag, else the
    policy's own hash (which the control plane's ETag is). An odd one echoed back could be
    refused by the server (a header past its size limit) on every poll from then on."""
    if value is not None and _ETAG.fullmatch(value):
        return value
    return None if policy is None else f'"{policy.hash}"'


def _reason(body: bytes) -> str:
    """The control plane's one-line `error` (a 401 says why the token was refused), cut short
    and printable: it goes into this proxy's log, and a server could send anything."""
    try:
        error = json.loads(body[:4096]).get("error")
    except (ValueError, AttributeError, RecursionError):
        return ""
    if not isinstance(error, str):
        return ""
    text = "".join(c if c.isprintable() else "?" for c in error)
    return text if len(text) <= 300 else text[:300] + "..."


def _seconds(value: str | None) -> float:
    try:
        return min(30.0, max(0.0, float(value))) if value else 0.0
    except ValueError:
        return 1.0
