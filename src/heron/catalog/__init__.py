from heron.catalog.catalog import (
    INDEXED,
    PENDING,
    SKIPPED,
    Catalog,
    CatalogError,
    FileRecord,
    RunRecord,
)

__all__ = ["INDEXED", "PENDING", "SKIPPED", "Catalog", "CatalogError", "FileRecord", "RunRecord"]
