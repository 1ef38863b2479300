"""The control plane serves the MeshPolicy only to a caller that proves who it is: what unit
tests that read it need (imported by name, as `local_admin` is)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from smi.identity import Identity
from webhook.auth import BootstrapTokens, token_key


def reader(client: FlaskClient, identity: str = "shop/web") -> dict[str, str]:
    """The headers of a proxy polling for the policy: its workload's bootstrap token."""
    plane = client.application.extensions["smictl"]
    tokens = BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")
    return {"Authorization": f"Bearer {tokens.issue(Identity.parse(identity))}"}


def reader_client(app: Flask, identity: str = "shop/web") -> FlaskClient:
    """A test client of `app` that sends a workload's token on every request: what the policy
    route and the Data API ask of a caller (another Authorization given per request wins)."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = reader(client, identity)["Authorization"]
    return client
