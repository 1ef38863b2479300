"""The control plane's one typed settings object, read from `SMI_WEBHOOK_*` or from flags.

`smictl serve` turns its flags into these environment variables and starts gunicorn, whose
workers each call `create_app()` → `Settings.from_env()`; so the environment is the single
channel, and the Helm chart sets the same names. The names are a public contract
(docs/control-plane.md lists them); renaming one breaks deployed charts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import get_args

from smi.compiler.ir.model import MODES, Mode
from smi.errors import Diagnostic, SMIError
from smi.identity import DEFAULT_TRUST_DOMAIN
from smi.urls import http_url
from smi.validation.names import is_label

PREFIX = "SMI_WEBHOOK_"
IN_CLUSTER = "in-cluster"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "smictl"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the control plane is configured with; built once and passed in."""

    bind: str = "127.0.0.1:8443"
    cert_file: Path | None = None
    key_file: Path | None = None
    mesh_ca_cert_file: Path | None = None
    mesh_ca_key_file: Path | None = None
    # The CA that signed `cert_file`, for injected proxies to verify the control plane with
    # (SMI_PROXY_CONTROL_PLANE_CA_PEM). Unset, they verify it with the mesh CA: right only
    # where one CA signs both (`smictl certs init`); the Helm chart keeps them apart.
    serving_ca_file: Path | None = None
    # The token that `/apis/smictl.io/v1/...` (local mode's store API) demands as
    # `Authorization: Bearer`. `serve` sets it (`admin.token` in the certs directory unless
    # --admin-token-file); unset in local mode, that API refuses everyone.
    admin_token_file: Path | None = None
    # The CA(s) that sign the client certificate the kube-apiserver presents to webhooks
    # (its AdmissionConfiguration kubeconfig). Set, `/validate` and `/mutate` answer only a
    # caller with a certificate that chains to it and names one of
    # `client_names` (its subject CN or a DNS SAN), as Gatekeeper's --client-ca-name and
    # --client-cn-name do. Unset, those routes take any caller, as the API server's default
    # (no client certificate) needs.
    client_ca_file: Path | None = None
    client_names: tuple[str, ...] = ("kube-apiserver",)
    policies: tuple[Path, ...] = ()
    # The Rego policies shipped in the package; off when a deployment mounts its own copy
    # (the chart's ConfigMap) or wants built-in validation only (the conformance suite).
    shipped_policies: bool = True
    # The YAML/JSON mapping the policies read as `data.parameters` (`smictl admit
    # --parameters`'s file format): without it the webhook evaluated them with `{}`, so a
    # policy set gated in CI with parameters decided differently in the cluster.
    parameters: Path | None = None
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    mode: Mode = "deny"
    excluded_namespaces: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")
    proxy_image: str = "ghcr.io/smictl/smictl:0.1.0"
    # Inject the proxy as a native sidecar (an init container with restartPolicy Always:
    # Kubernetes >= 1.29); false puts it first in `containers`, held and delayed by hooks, for
    # older clusters. A pod's `smictl.io/native-sidecar` annotation overrides it.
    native_sidecars: bool = True
    service_account: str = "smictl-system/smictl"
    store: Path | None = None
    kubeconfig: str | None = None
    max_review_bytes: int = 3 * 1024 * 1024
    control_plane_url: str = "https://smictl.smictl-system.svc:8443"
    long_poll_seconds: float = 30.0
    # A registered endpoint not renewed for this long is dropped (its proxy renews at a third).
    endpoint_ttl_seconds: float = 60.0
    workers: int = 2
    threads: int = 16
    # Waiting long polls one worker parks on its event loop (gunicorn's worker_connections):
    # ~30 KiB each; past it a poll waits in a pool thread (docs/control-plane.md, "The worker").
    max_parked_polls: int = 1000

    @property
    def kubernetes(self) -> bool:
        """Kubernetes mode: a kubeconfig (or `in-cluster`) is configured."""
        return bool(self.kubeconfig)

    def store_path(self) -> Path:
        return self.store or default_state_dir() / "store.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read `SMI_WEBHOOK_<FIELD>`; unset variables keep their defaults."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw)
        if env.get(PREFIX + "IN_CLUSTER", "").lower() in {"1", "true", "yes"}:
            values.setdefault("kubeconfig", IN_CLUSTER)
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` rebuild these settings exactly."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                sep = ":" if f.name == "policies" else ","
                text = sep.join(str(v) for v in value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            out[PREFIX + f.name.upper()] = text
        return out


def _parse(name: str, raw: str) -> object:
    try:
        return _PARSERS.get(name, str)(raw)
    except ValueError as exc:
        # The message names the variable already; as the path too, it was printed twice
        # (`SMI_WEBHOOK_WORKERS: SMI_WEBHOOK_WORKERS='abc': ...`).
        raise SMIError(
            Diagnostic(code="SMI7009", message=f"{PREFIX}{name.upper()}={raw!r}: {exc}")
        ) from exc


def problem(name: str, value: object) -> str | None:
    """Why `value` is no good for the field `name`, by the rule its variable is read with, or
    None. Flags reach `Settings` through argparse, which checks the type (`int`) but not these
    limits; a value refused only in gunicorn's config file ends in its traceback."""
    try:
        _PARSERS.get(name, str)(str(value))
    except ValueError as exc:
        return str(exc)
    return None


# What injected proxies are given (`serve` and `smictl inject` check them alike: a value that
# parses as a string can still make pods that cannot work).


def control_plane_url_problem(url: str) -> str | None:
    """Why injected proxies cannot be pointed at `url`. They send their ServiceAccount token
    there on every poll and CSR, and refuse, at start, to send it over plain http: an http URL
    here would inject sidecars that never start."""
    parts = http_url(url)
    if parts is None:
        return "not an http(s) URL with a host"
    if parts.scheme != "https":
        return "injected proxies send their ServiceAccount token there: it must be https"
    return None


def proxy_image_problem(image: str) -> str | None:
    return None if image.strip() else "empty; injected pods would have no proxy image"


def namespaces_problem(names: Iterable[str]) -> str | None:
    """The first name of `names` that is no namespace (a DNS-1123 label)."""
    bad = next((n for n in names if not is_label(n)), None)
    return None if bad is None else f"{bad!r} is not a DNS-1123 label"


def _mode(raw: str) -> Mode:
    if raw not in MODES:
        raise ValueError(f"must be one of {', '.join(get_args(Mode))}")
    return raw


# The largest count or number of seconds a setting takes: a C `int`, as gunicorn's worker
# count, thread count and timeout end up. 10**30 workers was accepted, `inf` seconds ended in
# an OverflowError traceback from gunicorn's config file, and `nan` passed `<= 0`.
MAX_SETTING = 2**31 - 1


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0  # Python's own message ("invalid literal for int() with base 10") says less
    if not 0 < value <= MAX_SETTING:
        raise ValueError("must be a positive integer" + _at_most(value))
    return value


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_SETTING:
        raise ValueError("must be a positive number" + _at_most(value))
    return value


def _at_most(value: float) -> str:
    return f" no larger than {MAX_SETTING}" if value > MAX_SETTING else ""


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _names(raw: str) -> tuple[str, ...]:
    names = _csv(raw)
    if not names:
        raise ValueError("must name at least one client (a certificate CN or DNS name)")
    return names


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in raw.split(":") if p)


_PARSERS: Mapping[str, Callable[[str], object]] = MappingProxyType(
    {
        "cert_file": Path,
        "key_file": Path,
        "mesh_ca_cert_file": Path,
        "mesh_ca_key_file": Path,
        "serving_ca_file": Path,
        "admin_token_file": Path,
        "client_ca_file": Path,
        "client_names": _names,
        "parameters": Path,
        "store": Path,
        "policies": _paths,
        "shipped_policies": _bool,
        "native_sidecars": _bool,
        "excluded_namespaces": _csv,
        "mode": _mode,
        "max_review_bytes": _positive_int,
        "workers": _positive_int,
        "threads": _positive_int,
        "max_parked_polls": _positive_int,
        "long_poll_seconds": _positive_float,
        "endpoint_ttl_seconds": _positive_float,
    }
)
