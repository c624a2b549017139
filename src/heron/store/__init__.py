"""Vector + field storage behind one protocol; see heron.store.base.Store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from heron.store.base import UNIT_COLUMNS, Store, StoreError, StoreHit
from heron.store.filters import Field, Filter, FilterError, parse_filter

if TYPE_CHECKING:
    from heron.store.lance import AnnSettings, LanceStore


def __getattr__(name: str) -> Any:
    # lancedb takes ~1.5 s to import; only code that opens a store should pay for it.
    if name in ("LanceStore", "AnnSettings"):
        from heron.store import lance

        return getattr(lance, name)
    raise AttributeError(f"module 'heron.store' has no attribute {name!r}")


__all__ = [
    "UNIT_COLUMNS",
    "AnnSettings",
    "Field",
    "Filter",
    "FilterError",
    "LanceStore",
    "Store",
    "StoreError",
    "StoreHit",
    "parse_filter",
]
