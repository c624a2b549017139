"""The second stage: the first stage's best candidates re-scored by a second, stronger bundle.

The first stage is the library's own model over its ANN index (exact cosines: FAISS IVF-Flat
and Lance's refine step compare full-precision vectors). When a `rerank_model` is configured,
its top `rerank_depth` candidates are scored again by that model: the query is embedded by it,
each candidate unit by it too (its thumbnail, the original of a small photo, or a passage's
text), and the order follows the second model. A unit's second-model vector never changes (a
unit id names its content), so it is kept in a cache table beside the index and computed once;
the cache can be deleted at any time.

In a fused search the second stage does not discard the keyword evidence: the final order is a
reciprocal-rank fusion of the first stage's order and the second model's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from heron.models.encoder import Encoder
from heron.search.engine import RRF_K, TEXT_KINDS
from heron.store.base import Store, StoreError

PixelLoader = Callable[[Any], Image.Image | None]  # a hit -> its picture (None: none)
TextLoader = Callable[[list[str]], dict[str, str]]  # unit ids → their full text


class Reranker:
    """Re-scores hits (anything with id, kind, thumbnail, path and score) with `encoder`."""

    def __init__(
        self, encoder: Encoder, cache: Store, pixels: PixelLoader, texts: TextLoader
    ) -> None:
        self.encoder = encoder
        self.cache = cache
        self.pixels = pixels
        self.texts = texts

    def rerank(
        self, hits: Sequence, text: str | None, images: Sequence[Image.Image], fused: bool
    ) -> list:
        """`hits` in the second stage's order, each with `explain["rerank"]` (rank, score).

        Hits whose content cannot be read again (a moved original) keep their first-stage
        place among the rest, ranked after the ones the second model scored."""
        if not hits:
            return []
        query = self._query_vector(text, images)
        vectors = self.unit_vectors(hits)
        scored = {hit.id: float(vectors[hit.id] @ query) for hit in hits if hit.id in vectors}
        by_second = sorted(scored, key=lambda i: -scored[i])
        second_rank = {unit_id: rank for rank, unit_id in enumerate(by_second, start=1)}
        missing = len(by_second) + 1

        def order(item: tuple[int, object]) -> tuple[float, int]:
            first, hit = item
            second = second_rank.get(hit.id, missing)  # type: ignore[attr-defined]
            if fused:
                return (-(1 / (RRF_K + first) + 1 / (RRF_K + second)), first)
            return (second, first)

        ranked = sorted(enumerate(hits, start=1), key=order)
        out = []
        for first, hit in ranked:
            explain = dict(hit.explain or {})
            explain["first_stage"] = {"rank": first, "score": round(hit.score, 6)}
            if hit.id in scored:
                explain["rerank"] = {
                    "model": self.encoder.stamp,
                    "rank": second_rank[hit.id],
                    "score": round(scored[hit.id], 6),
                }
            out.append(replace(hit, explain=explain))
        return out

    def _query_vector(self, text: str | None, images: Sequence[Image.Image]) -> np.ndarray:
        parts = []
        if text:
            parts.append(self.encoder.embed_texts([text])[0])
        if images:
            parts.extend(self.encoder.embed_images(list(images)))
        vector = np.mean(np.stack(parts), axis=0)
        return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)

    def unit_vectors(self, hits: Sequence) -> dict[str, np.ndarray]:
        """The second model's vector of each hit: cached, or computed now and cached."""
        found = {
            row["id"]: np.asarray(row["vector"]) for row in self.cache.get([h.id for h in hits])
        }
        todo = [hit for hit in hits if hit.id not in found]
        if not todo:
            return found
        rows = []
        passages = [hit for hit in todo if hit.kind in TEXT_KINDS]
        if passages:
            texts = self.texts([hit.id for hit in passages])
            readable = [hit for hit in passages if texts.get(hit.id)]
            vectors = self.encoder.embed_texts([texts[h.id] for h in readable], role="passage")
            rows += [(hit, vector) for hit, vector in zip(readable, vectors, strict=True)]
        pictures = []
        for hit in todo:
            if hit.kind not in TEXT_KINDS:
                image = self.pixels(hit)
                if image is not None:
                    pictures.append((hit, image))
        if pictures:
            vectors = self.encoder.embed_images([image for _, image in pictures])
            rows += [(hit, vector) for (hit, _), vector in zip(pictures, vectors, strict=True)]
        if rows:
            # A read-only data dir: scored now, computed again next time.
            with contextlib.suppress(StoreError):
                self.cache.upsert(
                    {"id": hit.id, "vector": vector, "model": self.encoder.stamp, "kind": hit.kind}
                    for hit, vector in rows
                )
        found.update({hit.id: np.asarray(vector) for hit, vector in rows})
        return found


__all__ = ["Reranker"]
