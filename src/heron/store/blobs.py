"""Small derived files (thumbnails) kept beside the vector store, one file per unit id."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path, suffix: str) -> None:
        self.root = root
        self.suffix = suffix

    def relative_path(self, key: str) -> str:
        return f"{key[:2]}/{key}{self.suffix}"

    def path(self, key: str) -> Path:
        return self.root / self.relative_path(key)

    def write(self, key: str, data: bytes) -> str:
        """Write atomically (temp file + rename): a killed process never leaves half a file."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.relative_path(key)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)
