"""gunicorn configuration of the control plane.

    gunicorn -c webhook/gunicorn.conf.py 'webhook:create_app()'


Everything comes from the same `SMI_WEBHOOK_*` variables the app reads (webhook/settings.py):
- `webhook.worker.LoopWorker`: one uvloop thread per worker answers reviews, conversions and
  health checks; waiting long polls are parked on that loop (no thread each, up to
  `worker_connections` per worker); store writes and certificate signing wait in a pool of
  SMI_WEBHOOK_THREADS threads.
  gthread kept connections alive too, but its threads fought over the GIL: at 500 reviews/s
  its p99 was 134 ms where this worker's is about 6 ms (docs/control-plane.md, "Speed").
  `GUNICORN_CMD_ARGS="--worker-class gthread"` brings gthread back if ever needed;
- TLS from SMI_WEBHOOK_CERT_FILE / SMI_WEBHOOK_KEY_FILE through `ServingContext`, which picks up
  a renewed certificate on the next handshake (SIGHUP, which restarts the workers, works too);
- prometheus-client multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set here, before any worker
  imports the client, emptied at start, and dead workers are marked in `child_exit` (NOTES.md);
  a directory made here (none was given) is removed in `on_exit`;
- `when_ready` logs the bound addresses as JSON and, with SMI_WEBHOOK_ADDRESS_FILE, writes the
  first one there, so callers that bind port 0 learn the real port.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from smi import atomicfile
from webhook.settings import Settings

_settings = Settings.from_env()

# The directory this server made (and removes in `on_exit`), in the environment rather than a
# global: gunicorn runs this file again on SIGHUP, when the variable above is already set.
_OWN_METRICS_DIR = "SMICTL_OWN_METRICS_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="smictl-metrics-")
    os.environ[_OWN_METRICS_DIR] = os.environ["PROMETHEUS_MULTIPROC_DIR"]

bind = [_settings.bind]
workers = _settings.workers
worker_class = "webhook.worker.LoopWorker"
threads = _settings.threads
# LoopWorker parks at most this many waiting long polls per worker (~30 KiB of RSS each, a TLS
# connection; never more than half of `ulimit -n`); past it a poll waits in the thread pool as
# under gthread (at most threads / 2, then 304 with Retry-After). SMI_WEBHOOK_MAX_PARKED_POLLS
# (`serve --max-parked-polls`, chart `controlPlane.maxParkedPolls`, whose memory limit follows
# it unless set by hand).
worker_connections = _settings.max_parked_polls
# The kube-apiserver and proxies reuse connections; keep idle ones long enough to matter.
keepalive = 75
# A long poll may legitimately run for long_poll_seconds; the worker timeout must exceed it.
timeout = int(_settings.long_poll_seconds) + 30
graceful_timeout = 10
accesslog = None  # the app writes JSON access logs itself (webhook/logs.py)
errorlog = "-"
loglevel = "warning"
proc_name = "smictl-control-plane"
if _settings.cert_file is not None and _settings.key_file is not None:
    certfile = str(_settings.cert_file)
    keyfile = str(_settings.key_file)


@functools.cache
def _serving() -> Any:
    from webhook.tls import ServingContext

    assert _settings.cert_file is not None and _settings.key_file is not None
    return ServingContext(
        cert_file=_settings.cert_file,
        key_file=_settings.key_file,
        client_ca_file=_settings.client_ca_file,
    )


def ssl_context(config: Any, default_ssl_context_factory: Any) -> Any:
    return _serving().get()


def on_starting(server: Any) -> None:
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def when_ready(server: Any) -> None:
    scheme = "https" if _settings.cert_file is not None else "http"
    addresses = []
    for listener in server.LISTENERS:
        host, port = listener.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL: in brackets
        addresses.append(f"{scheme}://{host}:{port}")
    sys.stderr.write(
        json.dumps({"log": "smictl.server", "event": "listening", "addresses": addresses}) + "\n"
    )
    sys.stderr.flush()
    target = os.environ.get("SMI_WEBHOOK_ADDRESS_FILE")
    if target and addresses:
        # A new temporary file, not a predictable `FILE.tmp` someone else could have made.
        data = (addresses[0] + "\n").encode()
        atomicfile.write_atomically(target, data, mode=atomicfile.new_file_mode())


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the metrics directory this server made: one was left in /tmp per start."""
    own = os.environ.get(_OWN_METRICS_DIR)
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(own, ignore_errors=True)
