"""proxy.policy: the index is swapped whole, bad documents never replace a good one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import pytest
from control_plane_fakes import control_plane, http_response

from proxy.metrics import Metrics
from proxy.policy import (
    ControlPlaneSource,
    FileSource,
    PolicyHolder,
    PolicySourceError,
    parse_endpoints,
)
from smi.compiler.ir import AuthzRule, Endpoint, HttpMatch, MeshPolicy

WEB = "spiffe://cluster.local/ns/shop/sa/web"
FRONT = "spiffe://cluster.local/ns/shop/sa/front"


def _policy(revision: int, path: str = "/api/") -> MeshPolicy:
    match = HttpMatch(origin="shop/HTTPRouteGroup/r#m", path_regex=path)
    return MeshPolicy(
        revision=revision,
        destinations={
            WEB: (AuthzRule(origin="shop/TrafficTarget/t", sources=(FRONT,), http=(match,)),)
        },
    )


async def test_install_swaps_the_index_and_reports_changes() -> None:
    holder = PolicyHolder(Metrics())
    seen: list[int] = []
    holder.on_change.append(lambda index: seen.append(index.policy.revision))
    assert await holder.install(_policy(1).to_json().encode()) is True
    first = holder.index
    assert await holder.install(_policy(1).to_json().encode()) is False  # same revision, hash
    assert holder.index is first
    assert await holder.install(_policy(2, "/v2/").to_json().encode()) is True
    assert holder.index is not first and holder.policy is not None
    assert holder.policy.revision == 2 and seen == [1, 2]
    assert holder.metrics.policy_updates == {"applied": 2, "unchanged": 1}
    assert holder.metrics.policy_revision == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"schemaVersion": 99, "destinations": {}}', "schemaVersion 99"),
        (b'{"schemaVersion": 1}', "destinations: must be an object, not null"),
    ],
)
async def test_a_bad_document_is_refused_and_the_last_good_policy_stays(
    raw: bytes, message: str
) -> None:
    holder = PolicyHolder(Metrics())
    await holder.install(_policy(1).to_json().encode())
    good = holder.index
    with pytest.raises(PolicySourceError, match=message):
        await holder.install(raw)
    assert holder.index is good
    assert holder.metrics.policy_updates["rejected"] == 1


async def test_file_source_reads_only_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(_policy(1).to_json())
    holder = PolicyHolder(Metrics())
    source = FileSource(path, holder, interval=0.05)
    await source.load()
    assert holder.policy is not None and holder.policy.revision == 1
    await source.load()
    assert holder.metrics.policy_updates == {"applied": 1}  # not re-read
    path.write_text(_policy(2).to_json())
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    await source.load()
    assert holder.policy.revision == 2
    path.write_text("garbage")
    os.utime(path, ns=(2, 2))
    with pytest.raises(PolicySourceError):
        await source.load()
    assert holder.policy.revision == 2
    path.unlink()
    with pytest.raises(PolicySourceError, match="No such file"):
        await source.load()
    assert holder.policy.revision == 2


def test_endpoints_file() -> None:
    doc = {"shop/web": [{"address": "10.0.0.1", "port": 15006, "identity": WEB}], "shop/x": []}
    assert parse_endpoints(json.dumps(doc).encode()) == {
        "shop/web": (Endpoint("10.0.0.1", 15006, WEB),),
        "shop/x": (),
    }
    with pytest.raises(PolicySourceError, match="endpoints file is invalid"):
        parse_endpoints(b'{"shop/web": [{"address": "a"}]}')


async def test_endpoints_file_source_updates_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps({"shop/web": [{"address": "a", "port": 1, "identity": WEB}]}))
    holder = PolicyHolder(Metrics())
    await FileSource(path, holder, kind="endpoints").load()
    assert holder.endpoints_of("shop/web") == (Endpoint("a", 1, WEB),)
    assert holder.endpoints_of("shop/none") is None


async def test_each_poll_of_the_control_plane_is_counted_under_one_result() -> None:
    # Before: a 200 whose document was refused counted `rejected` (the holder) and then
    # `unreachable` too (the loop counted every failed poll), though the control plane answered.
    answers = [
        http_response(200, b"<html>oops</html>"),  # read, refused
        http_response(500, b'{"error": "boom"}'),  # no document
        http_response(200, _policy(1).to_json().encode()),
    ]
    holder = PolicyHolder(Metrics())
    applied = asyncio.Event()
    holder.on_change.append(lambda _index: applied.set())
    async with control_plane(lambda n: answers[min(n, 2)]) as (url, _heads):
        source = ControlPlaneSource(url, holder, backoff=(0.001, 0.002), min_interval=60.0)
        task = asyncio.ensure_future(source.run())
        try:
            await asyncio.wait_for(applied.wait(), 5.0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert holder.metrics.policy_updates == {"rejected": 1, "unreachable": 1, "applied": 1}
