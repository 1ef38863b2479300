"""The smictl control plane: a Flask app under gunicorn (admission, conversion, policy
distribution, certificate signing, OPA Data API, local store API).

`create_app` is imported lazily: gunicorn's config (`webhook/gunicorn.conf.py`) imports
`webhook.settings` and must set PROMETHEUS_MULTIPROC_DIR before prometheus_client is first
imported, which importing the app here would do too early.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from webhook.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, **kwargs: Any) -> Flask:
    """Build the control plane app (see `webhook.app.create_app`)."""
    from webhook.app import create_app as _create_app

    return _create_app(settings, **kwargs)
