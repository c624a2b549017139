"""The terms a unit's text is found by in keyword search, in any script, with no dictionary.

Chinese (and Japanese, Korean) is written without spaces, so a text is cut into runs of letters
and digits: a run of Han, kana or Hangul becomes its overlapping character bigrams (a lone
character stays itself), any other run one lower-cased word. Queries go through the same cut, so
an exact phrase from an OCR'd screenshot, a slide or a file name is a phrase of bigrams. Measured
against jieba's search-mode segmentation on Flickr8k-CN captions (`bench/bench_keywords.py`:
1,000 texts, Lance's BM25 phrase query, recall@10 of the text a query was cut from): random
2/3/4/6-character substrings 0.48 / 0.61 / 0.60 / 0.42 with bigrams against 0.23 / 0.31 / 0.37 /
0.38 with jieba, whole captions 1.000 / 0.999; a substring that splits a word is lost to a word
segmenter, never to bigrams.
"""

from __future__ import annotations

import re
import unicodedata

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_RUN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_CJK_RUN = re.compile(rf"[{_CJK}]")


def terms(text: str) -> list[str]:
    """The terms of `text`, in order: CJK bigrams and lower-cased words (NFKC-normalised)."""
    found: list[str] = []
    for run in _RUN.findall(unicodedata.normalize("NFKC", text).lower()):
        if _CJK_RUN.match(run) and len(run) > 1:
            found.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            found.append(run)
    return found


def index_text(text: str) -> str:
    """`terms` as one space-separated string: what the store's full-text index tokenises."""
    return " ".join(terms(text))


def unit_terms(text: str, tags: list[str] | tuple[str, ...] = ()) -> str:
    """A unit's keyword terms: its text's, then its tags' (a tag is found as a keyword too)."""
    return index_text(" ".join([text, *tags]) if tags else text)
