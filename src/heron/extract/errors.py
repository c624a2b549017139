"""Per-file outcomes that end a file's ingest without ending the run."""

from __future__ import annotations


class SkipFile(Exception):
    """This file is not indexed; `reason` is a short human sentence stored in the catalog."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnreadableFile(SkipFile):
    """The file's content cannot be decoded: empty, not the format it claims, truncated, too big."""
