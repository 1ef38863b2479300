"""The serving TLS context, reloaded when the certificate files change, without a restart.

The control plane's worker (`webhook.worker.LoopWorker`) asks gunicorn's `ssl_context` hook for
the current context on every handshake (so does gthread, on every new connection), and the
default hook re-reads the files each time: correct but a file read and key parse per
handshake. `ServingContext` keeps one context and checks the files' modification stamps at most
once per `check_interval`; when they change it builds a new context and swaps it in. A pair
caught half-written (key not matching certificate) is skipped and the old context kept, so a
renewal never makes the server refuse a connection; open connections keep the context they
were accepted with.

With a client CA (`SMI_WEBHOOK_CLIENT_CA_FILE`) the context asks every caller for a certificate
and verifies one that is sent (CERT_OPTIONAL: proxies and `smictl apply` prove themselves with
tokens and send none); which routes require one is `webhook.callers`' business. The CA file is
watched like the pair. Such a context resumes no session (TLS 1.3 only, no tickets): a resumed
session is not verified again, and would outlive a CA swapped out of the file.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from pathlib import Path

from webhook import logs


class ServingContext:
    def __init__(
        self,
        *,
        cert_file: Path,
        key_file: Path,
        client_ca_file: Path | None = None,
        check_interval: float = 1.0,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._missing: str | None = None
        self._stamp = self._read_stamp()
        self._context = self._build()
        self._checked = time.monotonic()

    def get(self) -> ssl.SSLContext:
        """The context for a new connection; reloads first if the files changed."""
        now = time.monotonic()
        if now - self._checked >= self.check_interval:
            with self._lock:
                if now - self._checked >= self.check_interval:
                    self._checked = now
                    self._maybe_reload()
        return self._context

    def _maybe_reload(self) -> None:
        try:
            stamp = self._read_stamp()
        except OSError as exc:
            # A file being replaced (look again at the next check), or one gone: said once, as
            # a missing client CA also holds back a renewed serving certificate.
            if self._missing != exc.filename:
                self._missing = exc.filename
                logs.emit(logs.SERVER, {"event": "tls_reload_waiting",
                                        "error": f"{exc.filename}: {exc.strerror}"},
                          level=logging.WARNING)  # fmt: skip
            return
        self._missing = None
        if stamp == self._stamp:
            return
        try:
            context = self._build()
        except (OSError, ssl.SSLError) as exc:
            logs.emit(
                logs.SERVER,
                {"event": "tls_reload_failed", "error": str(exc)},
                level=logging.WARNING,
            )
            return
        self._context, self._stamp = context, stamp
        logs.emit(logs.SERVER, {"event": "tls_reloaded", "cert": str(self.cert_file)})

    def _read_stamp(self) -> tuple[int, ...]:
        files = [self.cert_file, self.key_file]
        if self.client_ca_file is not None:
            files.append(self.client_ca_file)
        stamp: list[int] = []
        for path in files:
            st = path.stat()
            stamp += (st.st_mtime_ns, st.st_size)
        return tuple(stamp)

    def _build(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=str(self.cert_file), keyfile=str(self.key_file))
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=str(self.client_ca_file))
            context.verify_mode = ssl.CERT_OPTIONAL
            # No session resumption: a resumed session skips certificate verification, and a
            # worker keeps the context it started with for resumption, so a client certificate
            # of a CA since swapped out kept working for a ticket's lifetime (2 h). TLS 1.3
            # resumes only by ticket, and none is issued; TLS 1.2 could resume by session id.
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.num_tickets = 0
            context.options |= ssl.OP_NO_TICKET
        return context
