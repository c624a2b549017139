"""Running the REST API with uvicorn, safe by default.

On a loopback address (127.0.0.1, ::1, localhost) the API answers anyone on this machine. On
any other address it refuses to start unless API keys are required and exist: the key system
(`heron keys create`) plugs in through `require_keys` and `keys_exist`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from heron.config import ConfigError, Settings
from heron.interfaces.rest.app import ApiConfig, create_app

__all__ = ["KeysRequiredError", "is_loopback", "serve"]


class KeysRequiredError(ConfigError):
    """Listening beyond this machine needs API keys, and there are none."""


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _no_keys() -> bool:
    return False  # the key system comes next; until then no keys exist


def check_exposure(
    host: str, require_keys: bool | None = None, keys_exist: Callable[[], bool] = _no_keys
) -> bool:
    """Whether requests need a key on `host` (default: beyond loopback); KeysRequiredError
    when they do and none exist."""
    needed = (not is_loopback(host)) if require_keys is None else require_keys
    if needed and not keys_exist():
        raise KeysRequiredError(
            f"listening on {host} needs API keys; create one with heron keys create "
            "(or listen on 127.0.0.1)"
        )
    return needed


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    app: FastAPI | None = None,
    data_dir: str | Path | None = None,
    settings: Settings | None = None,
    config: ApiConfig | None = None,
    require_keys: bool | None = None,
    keys_exist: Callable[[], bool] = _no_keys,
    **uvicorn_options: Any,
) -> None:
    """Run the API on host:port until interrupted (refused beyond loopback without keys)."""
    check_exposure(host, require_keys, keys_exist)
    import uvicorn

    app = app or create_app(data_dir=data_dir, settings=settings, config=config)
    uvicorn.run(app, host=host, port=port, **uvicorn_options)
