"""The failures a user can cause and fix: interfaces show these as one clear message."""

from __future__ import annotations

from heron.catalog import CatalogError
from heron.catalog.acl import AclError
from heron.config import ConfigError
from heron.models.bundle import BundleError
from heron.models.registry import ModelUnavailableError
from heron.search.engine import QueryError
from heron.search.evaluation import EvalFileError
from heron.store.base import StoreError
from heron.store.filters import FilterError
from heron.understand.ocr import OcrUnavailableError
from heron.understand.tags import TagError
from heron.util.locks import LockedError

USER_ERRORS: tuple[type[Exception], ...] = (
    AclError,
    BundleError,
    CatalogError,
    ConfigError,
    EvalFileError,
    FileNotFoundError,
    FilterError,
    LockedError,
    ModelUnavailableError,
    OcrUnavailableError,
    QueryError,
    StoreError,
    TagError,
)
