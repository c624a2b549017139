from __future__ import annotations

import hashlib
from pathlib import Path

from heron.understand.hashes import content_hash, content_hash_bytes


def test_content_hash_is_blake2b_128_of_the_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # > 2 MiB: crosses chunk boundaries
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    expected = hashlib.blake2b(data, digest_size=16).hexdigest()
    assert content_hash(path) == content_hash_bytes(data) == expected
    assert len(expected) == 32


def test_identical_files_share_a_hash_and_edits_change_it(tmp_path: Path) -> None:
    a, b, c, empty = (tmp_path / n for n in ("a.jpg", "b.jpg", "c.jpg", "e.jpg"))
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"same bytez")
    empty.write_bytes(b"")
    assert content_hash(a) == content_hash(b) != content_hash(c)
    assert content_hash(empty) == content_hash_bytes(b"")
    assert content_hash(str(a)) == content_hash(a)
