"""The sidecar exactly as the injector configures it, in a container-like filesystem.

`webhook.injection.proxy_container` gives the container: its SMI_PROXY_* environment, a
read-only root filesystem, an in-memory volume and a projected token. This test runs
`smictl proxy` with that environment in a mount namespace of its own (`unshare --mount`) where
`/` is read-only and only the container's volume mounts exist — the in-memory volume as a
tmpfs, the token directory bound read-only — against a stand-in control plane. Ports and bind
addresses are the only things changed (port 0 and 127.0.0.1: the tests stay on loopback).

A sidecar that writes anywhere but its volumes cannot start in a pod; before TMPDIR was set
by the injector, it could not (its key directory went to /tmp).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from proxy_harness import EchoApp, Pki, https, request, wait_for
from proxy_mesh import FRONT
from test_proxy_controlplane import TOKEN, WEB, StandIn

from smi.pki import CertificateAuthority
from webhook.injection import InjectionConfig, proxy_container, proxy_volumes

pytestmark = pytest.mark.integration
# The container's fixed ports and pod-wide binds, moved to loopback and port 0 here.
LOOPBACK = {
    "SMI_PROXY_BIND": "127.0.0.1",
    "SMI_PROXY_ADMIN_BIND": "127.0.0.1",
    "SMI_PROXY_OUTBOUND": "0",
    "SMI_PROXY_ADMIN": "0",
    "POD_IP": "127.0.0.1",
}
SMICTL = "import sys; from smi.cli import main; sys.argv[0] = 'smictl'; sys.exit(main())"


def _can_unshare() -> bool:
    try:
        probe = ["unshare", "--mount", "--propagation", "private", "true"]
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# As in the Helm chart, the control plane's serving certificate has a CA of its own, which the
# injector passes on (SMI_PROXY_CONTROL_PLANE_CA_PEM); the mesh CA signs workloads only.
SERVING_CA = CertificateAuthority.create()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[StandIn, EchoApp, Pki]]:
    pki = Pki(tmp_path)
    server, app = StandIn(pki, serving_ca=SERVING_CA), EchoApp("web")
    server.failing = False
    yield server, app, pki
    server.shutdown()
    server.server_close()
    app.stop()


def _mount_script(container: dict[str, Any], token_dir: Path, command: str) -> str:
    """Shell for the namespace: the container's volumes at their mount paths, then `/` (and
    the tmpfs holding the mount points) read-only, then `command`."""
    volumes = {v["name"]: v for v in proxy_volumes()}
    run = os.path.realpath("/var/run")  # the mount paths are under /var/run
    lines = ["set -e", f"mount -t tmpfs -o mode=755 tmpfs {run}"]
    for mount in container["volumeMounts"]:
        path = mount["mountPath"]
        assert path.startswith("/var/run/"), path
        real = run + path.removeprefix("/var/run")
        volume = volumes[mount["name"]]
        lines.append(f"mkdir -p {real}")
        if "emptyDir" in volume:
            assert volume["emptyDir"].get("medium") == "Memory"
            lines.append(f"mount -t tmpfs -o mode=1777 tmpfs {real}")
        else:  # the projected ServiceAccount token: ours, read-only
            lines.append(f"mount --bind {shlex.quote(str(token_dir))} {real}")
            lines.append(f"mount -o remount,bind,ro {real}")
        if mount.get("readOnly") and "emptyDir" in volume:
            lines.append(f"mount -o remount,ro {real}")
    lines += [f"mount -o remount,ro {run}", "mount -o remount,bind,ro /", f"exec {command}"]
    return "\n".join(lines)


def _start(container: dict[str, Any], env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    token_dir = root / "token"
    token_dir.mkdir()
    (token_dir / "token").write_text(TOKEN, encoding="utf-8")
    ports = os.path.realpath("/var/run") + "/smictl/certs/ports.json"
    command = shlex.join([sys.executable, "-c", SMICTL, "proxy", "--ports-file", ports])
    script = _mount_script(container, token_dir, command)
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    with (root / "proxy.log").open("wb") as log:
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env={**full, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
        )


def _in_namespace(proc: subprocess.Popen[bytes], path: str) -> Path:
    """`path` as the process sees it (its mount namespace), through /proc/PID/root."""
    return Path(f"/proc/{proc.pid}/root{os.path.realpath('/var/run')}" + path)


def _container(plane: tuple[StandIn, EchoApp, Pki], *, serving_ca: bool = True) -> dict[str, Any]:
    """The proxy container the injector adds to a pod of shop/web, for this control plane
    (without the serving CA: as before the injector passed it on)."""
    server, app, pki = plane
    config = InjectionConfig(
        image="smictl:test",
        control_plane_url=server.url,
        ca_pem=pki.ca.cert_pem().decode(),
        control_plane_ca_pem=SERVING_CA.cert_pem().decode() if serving_ca else "",
    )
    return proxy_container(identity=WEB, app_port=app.port, config=config)


def _env(container: dict[str, Any], app_port: int) -> dict[str, str]:
    env = {e["name"]: str(e.get("value", "")) for e in container["env"]}
    return {**env, **LOOPBACK, "SMI_PROXY_INBOUND": f"0:{app_port}"}


pytestmark = [pytestmark, pytest.mark.skipif(not _can_unshare(), reason="no mount namespaces")]


def test_the_injected_sidecar_starts_and_serves_on_a_read_only_root(
    plane: tuple[StandIn, EchoApp, Pki], tmp_path: Path
) -> None:
    _, app, pki = plane
    container = _container(plane)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    proc = _start(container, _env(container, app.port), tmp_path)
    log = tmp_path / "proxy.log"
    try:
        ports = wait_listening(proc, log)
        ctx = pki.client(FRONT)
        inbound = int(ports["inbound"][str(app.port)])
        with https(inbound, ctx) as conn:
            assert wait_for(lambda: request(conn, "GET", "/v1/x")[0] == 200, what="a 200")
            assert request(conn, "GET", "/v2/x")[0] == 403
        # Its key went to the in-memory volume, and no process of it loaded cryptography.
        keys = list(_in_namespace(proc, "/smictl/certs").glob("smictl-proxy-*/key.pem"))
        assert len(keys) == 1
        assert "cryptography" not in Path(f"/proc/{proc.pid}/maps").read_text()
        assert "in this process" not in log.read_text()  # the key came from proxy.keygen
    finally:
        proc.terminate()
        proc.wait(15)


def test_without_a_writable_tmpdir_it_says_so_in_one_line(
    plane: tuple[StandIn, EchoApp, Pki], tmp_path: Path
) -> None:
    _, app, _ = plane
    container = _container(plane)
    env = _env(container, app.port)
    env.pop("TMPDIR")
    proc = _start(container, env, tmp_path)
    assert proc.wait(60) == 1
    assert (tmp_path / "proxy.log").read_text().strip().splitlines() == [
        "smictl proxy: cannot make a private directory for the workload key in /tmp: Read-only "
        "file system (set TMPDIR to a writable directory, in memory if possible) (SMI7102)"
    ]


def test_without_the_serving_ca_it_cannot_reach_a_control_plane_of_another_ca(
    plane: tuple[StandIn, EchoApp, Pki], tmp_path: Path
) -> None:
    """The mesh CA signed no serving certificate: the proxy refuses the control plane's TLS
    and stays unready (no policy, no certificate) — every injected pod of a chart install did,
    before the injector passed the serving CA on."""
    server, app, _ = plane
    container = _container(plane, serving_ca=False)
    proc = _start(container, _env(container, app.port), tmp_path)
    try:
        ports = wait_listening(proc, tmp_path / "proxy.log")
        wait_for(
            lambda: "certificate verify failed" in (tmp_path / "proxy.log").read_text(),
            what="the control plane's certificate to be refused",
        )
        assert server.signed == 0 and server.polls == 0
        status, _ = _admin_get(ports["admin"], "/ready")
        assert status == 503
    finally:
        proc.terminate()
        proc.wait(15)


def wait_listening(proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """The ports the sidecar in its mount namespace bound (its --ports-file, read through
    /proc/PID/root), once it has; its log if it exits first."""
    ports_file = _in_namespace(proc, "/smictl/certs/ports.json")

    def listening() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(f"the sidecar exited {proc.returncode}:\n{log.read_text()}")
        try:
            return dict(json.loads(ports_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    result: dict[str, Any] = wait_for(listening, what="the injected sidecar to listen")
    return result


def _admin_get(port: int, path: str) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()
