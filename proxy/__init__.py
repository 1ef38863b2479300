"""The smictl sidecar proxy: one asyncio (uvloop) process per workload.

    app ──plain HTTP──► outbound listener ─┐ Host → service → TrafficSplit → endpoint
                                           └─mTLS (this workload's cert)──► peer's inbound
    peer ──mTLS──► inbound listener ── identity (verified cert) → authorize → local app

Modules, request path first:
- `server` (downstream HTTP/1.1 protocol), `exchange` (per-request state, Router interface),
  `upstream` (upstream connections and the keep-alive pool), `http1` (sans-io header rules and
  canned replies), `flow` (back-pressure), `tcp` (L4 relays for TCPRoute-only ports),
  `tunnels` (upgraded connections authorized again when the policy changes);
- `routing` (inbound authorization and outbound split/endpoint choice, over
  `smi.compiler.ir.decide`), `metrics` (plain counters, Prometheus text on scrape);
- `policy` (MeshPolicy from a watched file or the control plane's long poll), `tls`
  (certificates from files or CSRs, rotation), `httpclient` (the proxy's own control-plane
  calls), `admin` (/metrics, /ready, /config), `state` (connections, deadlines, draining);
- `app` (one process: listeners, signals), `config` (`ProxyConfig`), `cli` (`smictl proxy`);
- `native`: the request-path modules are compiled with mypyc when the package is built
  (setup.py); it picks the compiled or the source form, once, before any of them loads.

The proxy imports nothing of smictl but `smi.compiler.ir` (with the regex helpers its matching
uses, `smi.re2syntax` and `smi.regexcost`), `smi.identity` and `smi.pki` (import-linter
enforces it): the MeshPolicy is the whole contract with the control plane.
`smi.pki` (and with it `cryptography`) is imported only by `keygen`, the child process that
makes a key and a CSR for the CSR mode: peer identities and certificates are handled with the
stdlib `ssl` (`peercert`, `tls`), so the sidecar never holds `cryptography`'s ~10 MB.
"""

from proxy import native as _native

_native.select()
