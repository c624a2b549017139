from heron.catalog.catalog import (
    INDEXED,
    PENDING,
    SKIPPED,
    Catalog,
    CatalogError,
    FileRecord,
    RunRecord,
    UnitRecord,
)

__all__ = [
    "INDEXED",
    "PENDING",
    "SKIPPED",
    "Catalog",
    "CatalogError",
    "FileRecord",
    "RunRecord",
    "UnitRecord",
]
