"""What happens to a control plane's state and certificates over its life: killed with SIGKILL in
the middle of an apply, restarted on the same store, its serving certificate renewed in place."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time

import pytest
import requests
from control_plane_harness import Server, split

from smi.store.base import Snapshot
from smi.store.sqlite import SQLiteStore

pytestmark = pytest.mark.integration
APPLY = "/apis/smictl.io/v1/apply"


def test_kill_9_mid_apply_leaves_the_old_or_the_new_state(fresh_server: Server) -> None:
    server = fresh_server.start(workers=1)
    base = server.admin_session().post(
        f"{server.url}{APPLY}", json={"items": [split("base", "base")]}
    )
    assert base.json()["revision"] == 1
    outcomes = []
    # Kill at several points of the apply: before, around and after its commit.
    for round_, fraction in enumerate((0.6, 0.95, 1.1)):
        outcomes.append(kill_during_apply(server, ns=f"crash{round_}", fraction=fraction))
        server.start(workers=1)  # the store opens again; the server serves what survived
        listed = server.admin_session().get(f"{server.url}/apis/smictl.io/v1/objects").json()
        assert listed["revision"] == outcomes[-1][1]
    print("objects kept per kill:", [n for n, _ in outcomes])


def kill_during_apply(server: Server, *, ns: str, fraction: float) -> tuple[int, int]:
    """Kill -9 the server `fraction` into an apply of a batch; return (batch objects kept,
    revision), after checking that nothing else changed and nothing partial survived."""
    before = snapshot(server)
    batch = [split(f"k{i}", f"root{i}", ns=ns) for i in range(600)]
    # How long this apply takes here, measured with a dry run, so the kill lands inside it.
    started = time.monotonic()
    dry = server.admin_session().post(
        f"{server.url}{APPLY}", json={"items": batch, "dryRun": True}, timeout=120
    )
    assert dry.status_code == 200, dry.text
    duration = time.monotonic() - started

    def send() -> None:
        with contextlib.suppress(requests.RequestException):  # the server dies under it
            server.admin_session().post(f"{server.url}{APPLY}", json={"items": batch}, timeout=120)

    t = threading.Thread(target=send)
    t.start()
    time.sleep(duration * fraction)
    server.kill()  # SIGKILL to gunicorn's master and workers
    t.join(timeout=60)
    after = snapshot(server)
    kept = [o for o in after.objects if o.key.namespace == ns]
    assert len(kept) in {0, len(batch)}, f"a partial apply survived: {len(kept)} objects"
    assert [o for o in after.objects if o.key.namespace != ns] == list(before.objects)
    assert after.revision == before.revision + (1 if kept else 0)
    return len(kept), after.revision


def snapshot(server: Server) -> Snapshot:
    store = SQLiteStore(server.store)
    try:
        return store.snapshot()
    finally:
        store.close()


def presented_certificate(url: str, ca: str) -> str:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.1 200")
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_a_renewed_serving_certificate_is_used_without_refusing_anyone(
    fresh_server: Server,
) -> None:
    server = fresh_server.start(workers=2)
    old = presented_certificate(server.url, str(server.ca))
    renewed = server.smictl("certs", "issue", "--dir", str(server.certs), "--ip", "127.0.0.1")
    assert renewed.returncode == 0, renewed.stderr
    # Every connection during the switch must succeed; then new ones get the new certificate
    # (each worker checks the files at most once a second).
    streak, deadline = 0, time.monotonic() + 30
    while streak < 10 and time.monotonic() < deadline:
        streak = streak + 1 if presented_certificate(server.url, str(server.ca)) != old else 0
    assert streak == 10


def test_a_stopped_server_leaves_no_metrics_directory_behind(fresh_server: Server) -> None:
    # gunicorn.conf.py makes a prometheus multiprocess directory when none is given; one was
    # left in the temporary directory by every start (1,207 seen on one machine).
    tmp = fresh_server.directory / "tmp"
    tmp.mkdir()
    fresh_server.start(workers=1, env={"TMPDIR": str(tmp)})
    assert [p.name[:15] for p in tmp.iterdir()] == ["smictl-metrics-"]
    fresh_server.stop()
    assert fresh_server.proc is not None and fresh_server.proc.returncode == 0
    assert list(tmp.iterdir()) == []
