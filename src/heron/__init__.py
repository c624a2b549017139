"""Heron: self-hosted multimodal semantic search."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from heron.library import Heron, SearchHit, Stats, Unit

__all__ = ["Heron", "SearchHit", "Stats", "Unit", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy, so `import heron` (and `heron --help`) stays fast and pulls in no heavy libraries.
    if name in ("Heron", "SearchHit", "Stats", "Unit"):
        from heron import library

        return getattr(library, name)
    raise AttributeError(name)
