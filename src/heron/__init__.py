"""Heron: self-hosted multimodal semantic search."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from heron.library import Heron, SearchHit

__all__ = ["Heron", "SearchHit", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy, so `import heron` (and `heron --help`) stays fast and pulls in no heavy libraries.
    if name in ("Heron", "SearchHit"):
        from heron import library

        return getattr(library, name)
    raise AttributeError(name)
