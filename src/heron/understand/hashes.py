"""Content hashes and unit ids.

A source's content hash is the BLAKE2b-128 of its bytes, so identical files share their units. A
unit id is derived from that hash and the unit's locator inside the source ("page=3"): stable
across runs, different for every unit, and for the whole-file unit of a photo (locator "") the
content hash itself, as it was before documents had several units.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_DIGEST_BYTES = 16
_CHUNK_BYTES = 1 << 20


def content_hash(path: Path | str) -> str:
    """Hex BLAKE2b-128 of the file's bytes, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    buffer = bytearray(_CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fp:
        while count := fp.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def content_hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex BLAKE2b-128 of in-memory bytes; equals `content_hash` of a file holding them."""
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).hexdigest()


def unit_id(source_hash: str, locator: str = "") -> str:
    """The id of the unit at `locator` in the content `source_hash`."""
    if not locator:
        return source_hash
    key = f"{source_hash}#{locator}".encode()
    return hashlib.blake2b(key, digest_size=_DIGEST_BYTES).hexdigest()
