"""Running the REST API with uvicorn, safe by default.

On a loopback address (127.0.0.1, ::1, localhost) the API answers anyone on this machine as
the local admin. On any other address every /v1 request needs an API key (`heron keys
create`), and the server refuses to start while no key is active (`KeyRing.any_active`).
`require_keys=True` (or `ApiConfig.require_keys`) asks for keys on loopback too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from heron.catalog import Catalog
from heron.catalog.keys import KeyRing
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
    return False  # an app not made by create_app: no key can authenticate on it


def active_keys_in(settings: Settings) -> Callable[[], bool]:
    """Whether the data dir of `settings` has an active API key (its catalog opened briefly)."""

    def exist() -> bool:
        catalog = Catalog(settings.catalog_path)
        try:
            return KeyRing(catalog).any_active()
        finally:
            catalog.close()

    return exist


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
    keys_exist: Callable[[], bool] | None = None,
    **uvicorn_options: Any,
) -> None:
    """Run the API on host:port until interrupted (refused beyond loopback without keys).

    Keys are required beyond loopback, or everywhere with `require_keys` (or
    `config.require_keys`) True; `keys_exist` defaults to the data dir's key ring (an `app`
    given ready-made has none unless `keys_exist` says otherwise)."""
    config = config or ApiConfig()
    wanted = require_keys if require_keys is not None else config.require_keys
    if keys_exist is None:
        if app is None:
            settings = settings or Settings.load(data_dir=data_dir)
            keys_exist = active_keys_in(settings)
        else:
            keys_exist = _no_keys
    needed = check_exposure(host, wanted, keys_exist)
    import uvicorn

    if app is None:
        app = create_app(settings=settings, config=replace(config, require_keys=needed))
    else:
        state = getattr(app.state, "heron_api", None)  # one of create_app's: never weakened
        if state is not None:
            state.auth.required = state.auth.required or needed
    uvicorn.run(app, host=host, port=port, **uvicorn_options)
