"""Heron: self-hosted multimodal semantic search."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from heron.library import Heron, ModelInfo, SearchHit, Stats, Unit
    from heron.models.build.adapter import Head

__all__ = ["Head", "Heron", "ModelInfo", "SearchHit", "Stats", "Unit", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy, so `import heron` (and `heron --help`) stays fast and pulls in no heavy libraries.
    if name in ("Heron", "ModelInfo", "SearchHit", "Stats", "Unit"):
        from heron import library

        return getattr(library, name)
    if name == "Head":  # what `Heron.train_adapter` returns; from the build package, on demand
        from heron.models.build.adapter import Head

        return Head
    raise AttributeError(name)
