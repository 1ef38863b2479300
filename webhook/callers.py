"""Who may send admission reviews: the kube-apiserver, proven by its client certificate.

`/validate` and `/mutate` are called by the API server, which by default presents
no client certificate, so by default they answer anyone who can connect — and a review's
answer says something (a warning names an object; a denial, a policy). Where the cluster's
AdmissionConfiguration gives the API server a client certificate for this webhook (a kubeconfig
with `client-certificate-data`), `SMI_WEBHOOK_CLIENT_CA_FILE` makes those routes demand it: a
certificate that chains to that CA (verified in the handshake, `webhook.tls`) and names one of
`SMI_WEBHOOK_CLIENT_NAMES` as its subject CN or a DNS SAN — Gatekeeper's `--client-ca-name` and
`--client-cn-name`. The name matters when the CA is the cluster's own, which signs every user's
and kubelet's certificate too.

Anyone else gets 401, one decision-log line and `smictl_review_callers_refused_total{reason}`.
Other routes are unaffected: proxies and `smictl apply` prove themselves with tokens. `/convert`
is not guarded: the API server calls CRD conversion webhooks without a client certificate
whatever its AdmissionConfiguration says (that kubeconfig is the admission plugins' only;
kubernetes/kubernetes#131810), so guarding it would fail every conversion.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webhook.wsgiloop import PEER_CERT

# The routes the API server calls through the admission plugins, which present the certificate.
REVIEW_PATHS = frozenset({"/validate", "/mutate", "/mutate/namespace-opted-in"})

NO_CERTIFICATE = "no-certificate"
NOT_NAMED = "name"


def names_of(cert: dict[str, Any]) -> set[str]:
    """The subject CNs and DNS SANs of a certificate as `getpeercert()` gives it."""
    names = {value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names.update(value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS")
    return names


class ReviewCallers:
    """The check a review route makes of its caller when a client CA is configured."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def refusal(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        """(reason label, one-line reason) for a caller the routes must refuse, else None."""
        cert = environ.get(PEER_CERT)
        if cert is None:
            # gunicorn's own workers (`--worker-class gthread`) hand over the TLS socket.
            getpeercert = getattr(environ.get("gunicorn.socket"), "getpeercert", None)
            cert = getpeercert() if getpeercert is not None else None
        if not cert:
            return NO_CERTIFICATE, (
                "this control plane takes reviews only from the API server's client "
                "certificate, and the caller sent none"
            )
        presented = names_of(cert)
        if presented.isdisjoint(self.names):
            shown = ", ".join(sorted(presented)) or "no CN or DNS name"
            return NOT_NAMED, (
                f"client certificate names {shown}; reviews are taken only from "
                f"{', '.join(sorted(self.names))}"
            )
        return None
