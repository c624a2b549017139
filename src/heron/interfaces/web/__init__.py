"""The web page people search from: plain HTML, CSS and ES modules, served beside the API.

    mount_web(app)      # GET / (the page) and /static/... (its files), no build step, no CDN

The page talks to the REST API only (/v1/search, /v1/items, /v1/jobs, /v1/stats, and the
read-only /v1/duplicates and /v1/insight/... of `heron.interfaces.rest.insight`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

__all__ = ["STATIC", "mount_web"]

_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; frame-src 'self'; "
        "base-uri 'none'; form-action 'self'"
    ),
}


def mount_web(app: FastAPI) -> None:
    """Serve the page at / and its files at /static on `app`."""
    index = STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="heron-web")
