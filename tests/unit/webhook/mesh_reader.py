"""The control plane serves the MeshPolicy only to a caller that proves who it is: what unit
tests that read it need (imported by name, as `local_admin` is)."""

from __future__ import annotations

from flask.testing import FlaskClient

from smi.identity import Identity
from webhook.auth import BootstrapTokens, token_key


def reader(client: FlaskClient, identity: str = "shop/web") -> dict[str, str]:
    """The headers of a proxy polling for the policy: its workload's bootstrap token."""
    plane = client.application.extensions["smictl"]
    tokens = BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")
    return {"Authorization": f"Bearer {tokens.issue(Identity.parse(identity))}"}
