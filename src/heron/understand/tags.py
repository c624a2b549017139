"""Tags people give their files (`heron tag add holiday ~/Pictures/2024`), as Heron keeps them.

A tag is case-folded, its inner whitespace becomes "-", and it is at most MAX_TAG_CHARS long,
so `Holiday  2024` and `holiday-2024` are one tag. A unit's tags are stored in one column,
space-separated and -padded (" cat holiday "), which makes `tag:cat` an exact-word match.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from heron.util.errors import HeronError

MAX_TAG_CHARS = 64


class TagError(HeronError, ValueError):
    """A tag cannot be used as given."""

    code = "bad_tag"
    status = 400


def normalize_tag(raw: str) -> str:
    """The stored spelling of a tag, or TagError saying what is wrong with it."""
    tag = "-".join(unicodedata.normalize("NFC", raw).casefold().split())
    if not tag:
        raise TagError("a tag needs at least one letter, digit or sign")
    if any(unicodedata.category(ch).startswith("C") for ch in tag):
        raise TagError(f"tag {raw!r} holds control or unprintable characters")
    if "," in tag:
        raise TagError(f"tag {raw!r} holds a comma (tag:a,b means either tag); use one per tag")
    if len(tag) > MAX_TAG_CHARS:
        raise TagError(f"tag {raw[:20]!r}... is longer than {MAX_TAG_CHARS} characters")
    return tag


def tag_column(tags: Iterable[str]) -> str:
    """The store column for these (normalised) tags: " a b ", or "" for none."""
    ordered = sorted(set(tags))
    return f" {' '.join(ordered)} " if ordered else ""


__all__ = ["MAX_TAG_CHARS", "TagError", "normalize_tag", "tag_column"]
