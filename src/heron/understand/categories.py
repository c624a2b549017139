"""Zero-shot categories: what kind of picture a unit is (animal, food, document, chart ...).

The text tower scores descriptions of each category against the unit's image vector, so it
works with any bundle and costs one matrix product per batch: the prompts are embedded once
per run (several per category, averaged). Confidence is the softmax of the cosines at CLIP's
temperature (0.01); a picture no category reaches `min_confidence` for is `other`. The label
list is configurable (`categories` setting: `name` or `name=中文名=description`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["DEFAULT_CATEGORIES", "Categoriser", "Category", "parse_categories"]

TEMPERATURE = 0.01
OTHER = "other"


@dataclass(frozen=True)
class Category:
    name: str
    chinese: str
    prompts: tuple[str, ...]  # what the text tower reads; their mean is the category's vector


# Several prompts per category, CLIP's prompt-ensemble way: one generic prompt per category
# was right for 0.49 of the labelled set of scripts/eval_categories.py, these ensembles 0.64.
DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(
        "portrait",
        "人像",
        ("a close-up portrait of a person's face", "a headshot of a man", "a headshot of a woman"),
    ),
    Category(
        "people",
        "人物",
        (
            "a photo of a man",
            "a photo of a woman",
            "a photo of a child",
            "a group of people",
            "a boy playing",
            "a girl playing",
            "people walking in the street",
        ),
    ),
    Category(
        "landscape",
        "风景",
        (
            "a landscape with mountains",
            "a beautiful view of the sea",
            "a sky with clouds",
            "a forest",
            "a desert landscape",
            "a lake at sunset",
        ),
    ),
    Category(
        "animal",
        "动物",
        ("a photo of a dog", "a photo of a cat", "a photo of a horse", "a photo of a bird"),
    ),
    Category("food", "食物", ("a plate of food", "a meal on a table", "a cake")),
    Category(
        "vehicle",
        "交通工具",
        ("a car on the road", "a bicycle", "a boat on the water", "a motorcycle", "a bus"),
    ),
    Category(
        "building", "建筑", ("a building", "a house", "a city street with buildings", "a church")
    ),
    Category("plant", "植物", ("flowers", "a tree", "plants in a garden")),
    Category("document", "文档", ("a page of text", "a printed document")),
    Category(
        "screenshot",
        "截图",
        (
            "a screenshot of a computer screen",
            "a software window with buttons and menus",
            "a web page",
        ),
    ),
    Category("chart", "图表", ("a bar chart", "a line graph", "a diagram")),
    Category("art", "艺术", ("a painting", "a drawing", "a cartoon illustration")),
)


class _TextEncoder(Protocol):
    def embed_texts(self, texts: list[str], role: str = "query") -> np.ndarray: ...


class Categoriser:
    """Categorises image vectors of one model; safe to share between threads."""

    def __init__(
        self,
        encoder: _TextEncoder,
        categories: Sequence[Category] = DEFAULT_CATEGORIES,
        min_confidence: float = 0.3,
        prompt_vectors: np.ndarray | None = None,
    ) -> None:
        """`prompt_vectors` (one row per category, from `prompt_vectors()` of an earlier run)
        spares loading the text towers at all in a run of pictures."""
        if not categories:
            raise ValueError("give at least one category")
        self.encoder = encoder
        self.categories = tuple(categories)
        self.min_confidence = min_confidence
        if prompt_vectors is not None and len(prompt_vectors) != len(self.categories):
            prompt_vectors = None  # made for another label list
        self._prompts: np.ndarray | None = prompt_vectors
        self._lock = threading.Lock()

    @staticmethod
    def key_for(categories: Sequence[Category]) -> str:
        """Names a label list and its prompts, to store `prompt_vectors()` under."""
        import hashlib

        spec = "\n".join(f"{c.name}={'|'.join(c.prompts)}" for c in categories)
        return hashlib.blake2b(spec.encode(), digest_size=8).hexdigest()

    def prompt_vectors(self) -> np.ndarray:
        return self._prompt_vectors()

    def _prompt_vectors(self) -> np.ndarray:
        with self._lock:
            if self._prompts is None:
                rows = []
                for category in self.categories:
                    mean = self.encoder.embed_texts(list(category.prompts), role="query").mean(0)
                    rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
                self._prompts = np.stack(rows).astype(np.float32)
            return self._prompts

    def classify(self, vectors: np.ndarray) -> list[tuple[str, float]]:
        """(category, confidence) for each image vector [N, dim]."""
        if len(vectors) == 0:
            return []
        logits = vectors @ self._prompt_vectors().T / TEMPERATURE
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        odds /= odds.sum(axis=1, keepdims=True)
        best = odds.argmax(axis=1)
        result = []
        for row, index in enumerate(best):
            confidence = float(odds[row, index])
            name = self.categories[index].name if confidence >= self.min_confidence else OTHER
            result.append((name, confidence))
        return result

    def chinese(self, name: str) -> str:
        for category in self.categories:
            if category.name == name:
                return category.chinese
        return "其他" if name == OTHER else name


def parse_categories(entries: Sequence[str]) -> tuple[Category, ...]:
    """`name`, `name=中文名` or `name=中文名=description` per entry; empty: the defaults."""
    if not entries:
        return DEFAULT_CATEGORIES
    known = {c.name: c for c in DEFAULT_CATEGORIES}
    parsed = []
    for entry in entries:
        name, _, rest = entry.partition("=")
        name = name.strip().lower()
        chinese, _, prompt = rest.partition("=")
        base = known.get(name)
        if not name:
            raise ValueError(f"a category needs a name: {entry!r}")
        prompts = (prompt.strip(),) if prompt.strip() else None
        parsed.append(
            Category(
                name,
                chinese.strip() or (base.chinese if base else name),
                prompts or (base.prompts if base else (f"a photo of {name}",)),
            )
        )
    return tuple(parsed)
