"""Retrieval quality on the user's own data: Recall@k, MRR and nDCG@10 from a JSONL file.

Each line is `{"query": "text", "relevant": ["path", ...]}` or
`{"query_image": "path", "relevant": [...]}`; paths are absolute or relative to the file's folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from heron.util.errors import HeronError
from heron.util.paths import absolute

RECALL_AT = (1, 5, 10)
NDCG_AT = 10


class EvalFileError(HeronError, ValueError):
    """The evaluation file cannot be used; the message names the line."""

    code = "bad_eval_file"
    status = 400


@dataclass(frozen=True)
class EvalQuery:
    line: int
    relevant: tuple[Path, ...]
    text: str | None = None
    image: Path | None = None

    @property
    def label(self) -> str:
        return self.text if self.text is not None else str(self.image)


@dataclass
class EvalReport:
    queries: int
    recall: dict[int, float]
    mrr: float
    ndcg_at_10: float
    skipped_queries: int = 0  # no relevant path of theirs is in the index
    missing_relevant: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {f"recall@{k}": round(v, 4) for k, v in self.recall.items()}
        data.update(
            {
                "mrr": round(self.mrr, 4),
                "ndcg@10": round(self.ndcg_at_10, 4),
                "queries": self.queries,
                "skipped_queries": self.skipped_queries,
                "missing_relevant": len(self.missing_relevant),
            }
        )
        return data


def load_eval_file(path: Path) -> list[EvalQuery]:
    base = absolute(path).parent
    queries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise EvalFileError(f"{path} is not UTF-8 text; an eval file is JSON lines") from None
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            queries.append(_parse_line(raw, number, base))
    if not queries:
        raise EvalFileError(f"{path} holds no queries")
    return queries


def _parse_line(raw: str, number: int, base: Path) -> EvalQuery:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EvalFileError(f"line {number}: not valid JSON ({exc.msg})") from exc
    if not isinstance(item, dict):
        raise EvalFileError(f"line {number}: expected a JSON object")
    text, image = item.get("query"), item.get("query_image")
    if (text is None) == (image is None):
        raise EvalFileError(f"line {number}: give exactly one of 'query' or 'query_image'")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise EvalFileError(f"line {number}: 'query' must be a non-empty string")
    relevant = item.get("relevant")
    if (
        not isinstance(relevant, list)
        or not relevant
        or not all(isinstance(p, str) for p in relevant)
    ):
        raise EvalFileError(f"line {number}: 'relevant' must be a non-empty list of paths")
    return EvalQuery(
        line=number,
        text=text,
        image=_resolve(image, base) if image is not None else None,
        relevant=tuple(_resolve(p, base) for p in relevant),
    )


def _resolve(path: str, base: Path) -> Path:
    candidate = Path(path).expanduser()
    return absolute(candidate if candidate.is_absolute() else base / candidate)


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for position, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / position
    return 0.0


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    gain = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return gain / ideal if ideal else 0.0


def summarise(results: Sequence[tuple[Sequence[str], set[str]]]) -> EvalReport:
    """Average the metrics over (ranked ids, relevant ids) pairs."""
    n = len(results)
    if n == 0:
        return EvalReport(queries=0, recall=dict.fromkeys(RECALL_AT, 0.0), mrr=0.0, ndcg_at_10=0.0)
    return EvalReport(
        queries=n,
        recall={k: sum(recall_at(r, rel, k) for r, rel in results) / n for k in RECALL_AT},
        mrr=sum(reciprocal_rank(r, rel) for r, rel in results) / n,
        ndcg_at_10=sum(ndcg_at(r, rel, NDCG_AT) for r, rel in results) / n,
    )
