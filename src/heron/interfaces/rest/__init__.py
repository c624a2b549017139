"""Heron's REST API (FastAPI): `create_app` builds it, `serve` runs it with uvicorn."""

from heron.interfaces.rest.app import ApiConfig, create_app
from heron.interfaces.rest.server import KeysRequiredError, serve

__all__ = ["ApiConfig", "KeysRequiredError", "create_app", "serve"]
