"""The local store API answers only the holder of the admin token: what unit tests that use
it need (imported by name, as `conformance_fakes` is): settings naming a token file, and a test
client that sends the token on every request."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from webhook.settings import Settings

ADMIN_TOKEN = "test-admin-token-0123456789-abcdefghijklmnopq"


def with_admin_token(settings: Settings, directory: Path, token: str = ADMIN_TOKEN) -> Settings:
    """`settings` with an admin token file in `directory` holding `token`."""
    path = directory / "admin.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return replace(settings, admin_token_file=path)


def admin_client(app: Flask, token: str = ADMIN_TOKEN) -> FlaskClient:
    """A test client of `app` that sends `Authorization: Bearer <token>` on every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client
