"""The HTTP service: `create_app(settings, *, ...)` (see `api/app.py`); one router module per resource."""

from deploy_manager.api.app import create_app

__all__ = ["create_app"]
