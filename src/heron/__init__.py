"""Heron: self-hosted multimodal semantic search.

Everything a user of the Python API meets is importable from here: `Heron`, what its methods
take and return, and the errors they raise (every one a `HeronError` with a stable `code`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from heron.catalog.acl import AclError
    from heron.catalog.catalog import CatalogError, FileRecord
    from heron.catalog.keys import KeyRecord, KeyRing, KeyRingError, Principal
    from heron.config import ConfigError, Settings
    from heron.ingest.pipeline import IndexReport
    from heron.library import Heron, ImageInput, ModelInfo, SearchHit, Stats, Unit
    from heron.models.build.adapter import Head
    from heron.models.bundle import BundleError
    from heron.models.registry import ModelUnavailableError
    from heron.search.duplicates import DuplicateFile, DuplicateSet
    from heron.search.engine import ModelMismatchError, QueryError, QueryWarning
    from heron.search.evaluation import EvalFileError, EvalQuery, EvalReport
    from heron.store.base import StoreError
    from heron.store.filters import FilterError
    from heron.understand.tags import TagError
    from heron.util.errors import HeronError
    from heron.util.locks import LockedError
    from heron.util.paths import MissingPathError

# name -> the module that defines it; imported on first use, so `import heron` (and
# `heron --help`) stays fast and pulls in no heavy library.
_EXPORTS = {
    "Heron": "heron.library",
    "ImageInput": "heron.library",
    "ModelInfo": "heron.library",
    "SearchHit": "heron.library",
    "Stats": "heron.library",
    "Unit": "heron.library",
    "Settings": "heron.config",
    "IndexReport": "heron.ingest.pipeline",
    "FileRecord": "heron.catalog.catalog",
    "DuplicateSet": "heron.search.duplicates",
    "DuplicateFile": "heron.search.duplicates",
    "EvalQuery": "heron.search.evaluation",
    "EvalReport": "heron.search.evaluation",
    "QueryWarning": "heron.search.engine",
    "KeyRing": "heron.catalog.keys",
    "KeyRecord": "heron.catalog.keys",
    "Principal": "heron.catalog.keys",
    "Head": "heron.models.build.adapter",  # what `Heron.train_adapter` returns (numpy only)
    # errors
    "HeronError": "heron.util.errors",
    "AclError": "heron.catalog.acl",
    "BundleError": "heron.models.bundle",
    "CatalogError": "heron.catalog.catalog",
    "ConfigError": "heron.config",
    "EvalFileError": "heron.search.evaluation",
    "FilterError": "heron.store.filters",
    "KeyRingError": "heron.catalog.keys",
    "LockedError": "heron.util.locks",
    "MissingPathError": "heron.util.paths",
    "ModelMismatchError": "heron.search.engine",
    "ModelUnavailableError": "heron.models.registry",
    "QueryError": "heron.search.engine",
    "StoreError": "heron.store.base",
    "TagError": "heron.understand.tags",
}

__all__ = [
    "AclError",
    "BundleError",
    "CatalogError",
    "ConfigError",
    "DuplicateFile",
    "DuplicateSet",
    "EvalFileError",
    "EvalQuery",
    "EvalReport",
    "FileRecord",
    "FilterError",
    "Head",
    "Heron",
    "HeronError",
    "ImageInput",
    "IndexReport",
    "KeyRecord",
    "KeyRing",
    "KeyRingError",
    "LockedError",
    "MissingPathError",
    "ModelInfo",
    "ModelMismatchError",
    "ModelUnavailableError",
    "Principal",
    "QueryError",
    "QueryWarning",
    "SearchHit",
    "Settings",
    "Stats",
    "StoreError",
    "TagError",
    "Unit",
    "__version__",
]  # every name of _EXPORTS (tests/test_facade.py checks)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'heron' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
