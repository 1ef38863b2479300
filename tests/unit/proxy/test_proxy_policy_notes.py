"""proxy.policy: what the policy sources say in the log, and how often.

- a policy file that is missing or unreadable is logged once per distinct error (it is looked
  at again at every tick), once more on SIGHUP, and at info when it can be read again; the
  line says "no policy loaded yet" while none ever was, "keeping the last good one" after;
- a control plane that cannot be reached says the same about the policy it keeps;
- a policy for another trust domain is installed, with a warning naming both trust domains,
  once per revision installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.metrics import Metrics
from proxy.policy import ControlPlaneSource, FileSource, PolicyHolder
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy

WEB = "spiffe://cluster.local/ns/shop/sa/web"
FRONT = "spiffe://cluster.local/ns/shop/sa/front"
LOGGER = "smictl.proxy.policy"


def _policy(revision: int, trust_domain: str = "cluster.local") -> MeshPolicy:
    match = HttpMatch(origin="shop/HTTPRouteGroup/r#m", path_regex="/api/")
    rule = AuthzRule(origin="shop/TrafficTarget/t", sources=(FRONT,), http=(match,))
    return MeshPolicy(revision=revision, trust_domain=trust_domain, destinations={WEB: (rule,)})


_DOCUMENTS = {
    "policy": _policy(1).to_json(),
    "endpoints": json.dumps({"shop/web": [{"address": "a", "port": 1, "identity": WEB}]}),
}


class _Ticks:
    """Counts the looks a running FileSource takes at its file, to wait for some to pass."""

    def __init__(self, source: FileSource) -> None:
        self.n = 0
        self._target = 0
        self._reached = asyncio.Event()
        changed = source.file.changed

        def counted() -> bool:
            self.n += 1
            if self.n >= self._target:
                self._reached.set()
            return changed()

        source.file.changed = counted  # type: ignore[method-assign]

    async def wait(self, more: int) -> None:
        """Until `more` looks have begun: the one before the last has ended."""
        self._target = self.n + more
        self._reached.clear()
        await self._reached.wait()


class _Said(logging.Handler):
    """Wakes a test when the policy logger logs an error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.said = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.said.set()


@contextlib.asynccontextmanager
async def _running(source: FileSource | ControlPlaneSource) -> AsyncIterator[None]:
    task = asyncio.ensure_future(source.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.mark.parametrize("kind", ["policy", "endpoints"])
async def test_a_missing_file_is_logged_once_per_distinct_error_not_at_every_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    path = tmp_path / "p2.json"
    holder = PolicyHolder(Metrics())
    source = FileSource(path, holder, kind=kind, interval=0.01)
    ticks = _Ticks(source)
    missing = f"{kind} file: {path}: No such file or directory"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        async with _running(source):
            await ticks.wait(20)
            assert _lines(caplog, logging.ERROR) == [f"{missing}; no {kind} loaded yet"]

            path.write_text(_DOCUMENTS[kind])
            await ticks.wait(2)
            assert source.loaded
            assert f"{kind} file: {path} is readable again" in _lines(caplog, logging.INFO)

            path.unlink()
            await ticks.wait(20)
            path.mkdir()  # another error: said too, once
            await ticks.wait(20)
            source.reload()  # SIGHUP: said once more, the operator asked
            await ticks.wait(20)
    kept = "keeping the last good one"
    a_directory = f"{kind} file: {path}: Is a directory; {kept}"
    assert _lines(caplog, logging.ERROR)[1:] == [f"{missing}; {kept}", a_directory, a_directory]


async def test_a_document_rewritten_with_the_same_error_is_logged_at_each_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.json"
    path.write_text("{not json")
    source = FileSource(path, PolicyHolder(Metrics()), interval=0.01)
    ticks = _Ticks(source)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        async with _running(source):
            await ticks.wait(10)
            path.write_text("{not json ")  # another size: a change, refused for the same reason
            await ticks.wait(10)
    errors = _lines(caplog, logging.ERROR)
    assert len(errors) == 2 and all("not JSON" in e and "no policy loaded yet" in e for e in errors)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("loaded", [False, True])
async def test_an_unreachable_control_plane_says_whether_a_policy_is_kept(
    caplog: pytest.LogCaptureFixture, loaded: bool
) -> None:
    holder = PolicyHolder(Metrics())
    if loaded:
        await holder.install(_policy(1).to_json().encode())
    url = f"http://127.0.0.1:{_closed_port()}/mesh/v1/policy"
    source = ControlPlaneSource(url, holder, backoff=(0.001, 0.002))
    said = _Said()
    logging.getLogger(LOGGER).addHandler(said)
    try:
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            async with _running(source):
                await said.said.wait()
    finally:
        logging.getLogger(LOGGER).removeHandler(said)
    line = _lines(caplog, logging.ERROR)[0]
    assert line.startswith(f"control plane {url}: ")
    kept = "keeping the last good policy" if loaded else "no policy loaded yet"
    assert f"; {kept}, retrying in " in line


async def test_a_policy_for_another_trust_domain_is_installed_with_a_warning_per_revision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder = PolicyHolder(Metrics(), trust_domain="cluster.local")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await holder.install(_policy(1, "example.org").to_json().encode()) is True
        assert holder.policy is not None and holder.policy.trust_domain == "example.org"
        assert await holder.install(_policy(1, "example.org").to_json().encode()) is False
        assert await holder.install(_policy(2, "example.org").to_json().encode()) is True
        assert await holder.install(_policy(3).to_json().encode()) is True  # ours: nothing said
    warnings = _lines(caplog, logging.WARNING)
    assert [w.split(" is for ")[0] for w in warnings] == ["policy revision 1", "policy revision 2"]
    for warning in warnings:
        assert "trust domain 'example.org'" in warning and "is in 'cluster.local'" in warning
        assert "no-traffic-target" in warning and "installed anyway" in warning
