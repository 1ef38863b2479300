"""A fresh P-256 key and a CSR for this workload, made in a short-lived child process.

Why a child: making a key takes `cryptography`, and importing it leaves about 10 MB resident
(its own copy of OpenSSL and the x509 bindings) in the process that does it, for good — a third
of the sidecar's 30 MB budget, spent on one call every sixteen hours. So the proxy runs
`python -m proxy.keygen <SPIFFE ID>` instead: the child imports `smi.pki`, writes
`{"key": PEM, "csr": PEM}` on its stdout and exits, and its memory goes with it. The key
crosses a pipe, never a file. The proxy itself never imports `cryptography` (a test reads the
running proxy's memory map to hold it to that).

If no child can be started (no `sys.executable`, the process limit reached), the key is made
in-process with a warning: a certificate matters more than 10 MB.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from smi.identity import Identity, IdentityError

log = logging.getLogger("smictl.proxy.keygen")

TIMEOUT = 30.0  # a child that starts Python and makes one key takes ~0.3 s here
MAX_OUTPUT = 64 * 1024  # a P-256 key and its CSR are under 1 KiB together


class KeygenError(Exception):
    """No key and CSR could be made."""


def command(identity: Identity) -> list[str]:
    """The child's command line: this interpreter, `-P` so that nothing in the working
    directory can stand in for `proxy.keygen`."""
    return [sys.executable, "-P", "-m", "proxy.keygen", identity.spiffe_id]


def child_environment() -> dict[str, str]:
    """This process's environment, with the directory this `proxy` package was imported from
    first on PYTHONPATH: the child must run this very code, even where the proxy was started
    from a directory that `-P` keeps off the child's path."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rest = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = here + (os.pathsep + rest if rest else "")
    return env


async def make_key_and_csr(identity: Identity) -> tuple[bytes, bytes]:
    """(key PEM, CSR PEM) for `identity`, from a child process (see the module docstring)."""
    argv, timeout = command(identity), TIMEOUT
    if not argv[0]:
        log.warning("no interpreter to run proxy.keygen: making the key in this process")
        return _in_process(identity)
    try:
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(),
        )
    except OSError as exc:
        log.warning("cannot start proxy.keygen (%s): making the key in this process", exc)
        return _in_process(identity)
    try:
        async with asyncio.timeout(timeout):
            out, err = await child.communicate()
    except TimeoutError:
        child.kill()
        await child.wait()
        raise KeygenError(f"proxy.keygen gave no key within {timeout:g}s") from None
    except BaseException:  # cancelled (shutdown): leave no child behind
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    if child.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1][:300] if lines else "no message"
        raise KeygenError(f"proxy.keygen exited {child.returncode}: {why}")
    return _read(out)


def _read(out: bytes) -> tuple[bytes, bytes]:
    if len(out) > MAX_OUTPUT:
        raise KeygenError("proxy.keygen wrote more than a key and a CSR")
    try:
        doc = json.loads(out)
        key, csr = str(doc["key"]).encode("ascii"), str(doc["csr"]).encode("ascii")
    except (ValueError, KeyError, TypeError) as exc:
        raise KeygenError(f"proxy.keygen wrote no key and CSR: {exc}") from None
    if not key.startswith(b"-----BEGIN") or not csr.startswith(b"-----BEGIN CERTIFICATE REQ"):
        raise KeygenError("proxy.keygen wrote no PEM key and CSR")
    # Whether the CSR names this identity the control plane checks (it signs only a CSR for
    # the token's identity), and WorkloadTLS.install checks the certificate that comes back
    # (its identity, and that it matches this key).
    return key, csr


def _in_process(identity: Identity) -> tuple[bytes, bytes]:
    from smi.pki import generate_key, key_to_pem, make_csr

    key = generate_key()
    return key_to_pem(key), make_csr(key, identity)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m proxy.keygen SPIFFE_ID", file=sys.stderr)
        return 2
    try:
        identity = Identity.parse(args[0])
    except IdentityError as exc:
        print(f"proxy.keygen: {exc}", file=sys.stderr)
        return 2
    key, csr = _in_process(identity)
    sys.stdout.write(json.dumps({"key": key.decode("ascii"), "csr": csr.decode("ascii")}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
