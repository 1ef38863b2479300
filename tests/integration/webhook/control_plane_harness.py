"""A real control plane for integration tests (imported by name, like proxy_harness):
`smictl serve` (gunicorn, event-loop workers, TLS) on 127.0.0.1 port 0, its address read back
from --address-file, readiness polled on /readyz."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

SMICTL = [sys.executable, "-m", "smi.cli"]
READY_TIMEOUT = 90.0  # generous: a loaded 2-core machine starts two workers slowly


@dataclass
class Server:
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "server.log"

    @property
    def certs(self) -> Path:
        return self.directory / "certs"

    @property
    def ca(self) -> Path:
        return self.certs / "ca.crt"

    @property
    def store(self) -> Path:
        return self.directory / "store.db"

    def start(
        self, *, workers: int = 2, extra: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> Server:
        address = self.directory / "address"
        address.unlink(missing_ok=True)
        env = {**os.environ, "SMICTL_DEBUG": "1", **(env or {})}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        cmd = [*SMICTL, "serve", "--bind", "127.0.0.1:0", "--certs-dir", str(self.certs),
               "--store", str(self.store), "--address-file", str(address),
               "--workers", str(workers), "--threads", "8", *extra]  # fmt: skip
        with self.log.open("ab") as log:
            # A new session: the test can signal gunicorn's master and workers as one group.
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env,
                                         start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smictl serve exited: {self.log.read_text()[-2000:]}")
            if address.is_file() and self._ready(address.read_text().strip()):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"smictl serve not ready in time: {self.log.read_text()[-2000:]}")

    def _ready(self, url: str) -> bool:
        try:
            r = self.session().get(f"{url}/readyz", timeout=2)
        except requests.RequestException:
            return False
        if r.status_code == 200:
            self.url = url
            return True
        return False

    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace our CA
        s.verify = str(self.ca)
        return s

    def admin_session(self) -> requests.Session:
        """A session that holds the admin token `serve` made, as the local store API asks."""
        s = self.session()
        token = (self.certs / "admin.token").read_text().strip()
        s.headers["Authorization"] = f"Bearer {token}"
        return s

    def workload_token(self, identity: str = "shop/web") -> str:
        """A bootstrap token of the mesh CA `serve` made, as `smictl certs token` prints it."""
        from smi.identity import Identity
        from webhook.auth import BootstrapTokens, token_key
        from webhook.cli import load_ca_dir

        ident = Identity.parse(identity)
        tokens = BootstrapTokens(
            key=token_key(load_ca_dir(self.certs).key), trust_domain=ident.trust_domain
        )
        return tokens.issue(ident)

    def workload_session(self, identity: str = "shop/web") -> requests.Session:
        """A session of a proxy: its workload's token, which the policy is served to."""
        s = self.session()
        s.headers["Authorization"] = f"Bearer {self.workload_token(identity)}"
        return s

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def smictl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SMICTL_SERVER": self.url, "SMICTL_CA_FILE": str(self.ca)}
        return subprocess.run([*SMICTL, *args], capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)  # fmt: skip


def split(
    name: str, root: str, *, ns: str = "shop", weights: tuple[int, int] = (90, 10)
) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": ns, "labels": {"owner": "team"}},
        "spec": {
            "service": root,
            "backends": [
                {"service": f"{root}-v1", "weight": weights[0]},
                {"service": f"{root}-v2", "weight": weights[1]},
            ],
        },
    }


def admission_review(obj: dict[str, Any], *, uid: str, operation: str = "CREATE") -> dict[str, Any]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": obj["kind"]},
            "resource": {"group": group, "version": version, "resource": obj["kind"].lower() + "s"},
            "requestKind": {"group": group, "version": version, "kind": obj["kind"]},
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"].get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
