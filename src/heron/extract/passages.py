"""Cutting a document's text into passages: about `size` long, overlapping, at boundaries.

Length is counted as a text tower counts it, roughly in tokens: a Han, kana or Hangul character
is about one token, as about four Latin letters are, so each such character counts as
`WIDE_WEIGHT` characters. A passage of `size` 1000 is then ~1000 Latin characters or ~250
Chinese ones, either way well inside a 512-token tower, which would silently drop the rest.

A passage ends, in order of preference, at a paragraph break, at the end of a sentence (Latin
`.!?;:` before a space, or Chinese `。！？；…` anywhere, since Chinese puts no space after them),
at a space, and only failing all of those in the middle of a run of letters. The next passage
starts up to `overlap` earlier, at a boundary too, so a sentence cut by one passage is whole in
the next. Offsets index the text given, so a hit can point back into its source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from heron.extract.base import UnitDraft

__all__ = ["WIDE_WEIGHT", "Passage", "cut_passages", "passage_unit"]

WIDE_WEIGHT = 4
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"[.!?;:](?=\s)|[。！？；…]+[”’」』）)]?")
_SPACE = re.compile(r"\s+")
_WIDE = re.compile(
    r"[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef]"
)


@dataclass(frozen=True)
class Passage:
    start: int
    end: int
    text: str


def passage_unit(
    passage: Passage,
    chunk: int,
    format: str,
    pointer: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> UnitDraft:
    """The `passage` unit for one passage: embedded as text, no thumbnail, located by offsets."""
    return UnitDraft(
        kind="passage",
        locator=f"chars={passage.start}-{passage.end}",
        text=passage.text,
        embed="text",
        thumbnail="none",
        pointer={**(pointer or {}), "start": passage.start, "end": passage.end, "chunk": chunk},
        format=format,
        fields=fields or {},
    )


def cut_passages(text: str, size: int = 1000, overlap: int = 150) -> list[Passage]:
    """Passages covering `text` (whitespace-only stretches yield nothing)."""
    if size < 50:
        raise ValueError(f"passage size must be at least 50 characters, got {size}")
    overlap = max(0, min(overlap, size // 2))
    lengths = _Lengths(text)
    passages: list[Passage] = []
    start = _skip_space(text, 0)
    while start < len(text):
        limit = lengths.reach(start, size)
        end = len(text) if limit >= len(text) else _cut_point(text, start, limit)
        piece = text[start:end].strip()
        if piece:
            passages.append(Passage(start, end, piece))
        if end >= len(text):
            break
        back = max(start + 1, lengths.back(end, overlap))
        start = _skip_space(text, _overlap_start(text, back, end, overlap))
    return passages


class _Lengths:
    """Weighted lengths of stretches of the text (prefix sums)."""

    def __init__(self, text: str) -> None:
        weights = [1] * len(text)
        for match in _WIDE.finditer(text):
            weights[match.start()] = WIDE_WEIGHT
        self.sums = [0, *accumulate(weights)]

    def reach(self, start: int, size: int) -> int:
        """The furthest end such that text[start:end] weighs at most `size` (at least start+1)."""
        target = self.sums[start] + size
        low, high = start + 1, len(self.sums) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self.sums[middle] <= target:
                low = middle
            else:
                high = middle - 1
        return low

    def back(self, end: int, size: int) -> int:
        """The earliest start such that text[start:end] weighs at most `size`."""
        target = self.sums[end] - size
        low, high = 0, end
        while low < high:
            middle = (low + high) // 2
            if self.sums[middle] >= target:
                high = middle
            else:
                low = middle + 1
        return low


def _cut_point(text: str, start: int, limit: int) -> int:
    """The best boundary in the second half of text[start:limit]."""
    floor = start + (limit - start) // 2
    window = text[floor:limit]
    for pattern in (_PARAGRAPH, _SENTENCE, _SPACE):
        ends = [m.end() if pattern is _SENTENCE else m.start() for m in pattern.finditer(window)]
        ends = [e for e in ends if e > 0]
        if ends:
            return floor + ends[-1]
    return limit


def _overlap_start(text: str, back: int, end: int, overlap: int) -> int:
    """Where the next passage starts: at `back`, moved to the first boundary after it that
    still leaves some overlap."""
    if overlap == 0:
        return end
    window = text[back:end]
    keep = (end - back) // 4
    for pattern in (_SENTENCE, _SPACE):
        for match in pattern.finditer(window):
            if back + match.end() < end - keep:
                return back + match.end()
    return back


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index
