from heron.catalog.catalog import INDEXED, PENDING, SKIPPED, Catalog, FileRecord, RunRecord

__all__ = ["INDEXED", "PENDING", "SKIPPED", "Catalog", "FileRecord", "RunRecord"]
