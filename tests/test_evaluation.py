from __future__ import annotations

import json
from pathlib import Path

import pytest

from heron.search.evaluation import (
    EvalFileError,
    load_eval_file,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    summarise,
)


def test_metrics_on_a_known_ranking() -> None:
    ranked = ["a", "b", "c", "d"]
    assert reciprocal_rank(ranked, {"c"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, {"z"}) == 0
    assert recall_at(ranked, {"b", "z"}, 1) == 0
    assert recall_at(ranked, {"b", "z"}, 2) == 0.5
    assert ndcg_at(ranked, {"a"}, 10) == 1.0
    assert ndcg_at(ranked, {"b"}, 10) == pytest.approx(1 / 1.5849625, rel=1e-6)
    report = summarise([(ranked, {"a"}), (ranked, {"z"})])
    assert report.recall == {1: 0.5, 5: 0.5, 10: 0.5}
    assert report.mrr == 0.5 and report.queries == 2


def test_eval_file_resolves_relative_paths(tmp_path: Path) -> None:
    lines = [
        {"query": "a dog", "relevant": ["img/a.jpg", "/abs/b.jpg"]},
        {"query_image": "q.jpg", "relevant": ["img/c.jpg"]},
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    first, second = load_eval_file(path)
    assert first.text == "a dog" and first.relevant == (tmp_path / "img/a.jpg", Path("/abs/b.jpg"))
    assert second.image == tmp_path / "q.jpg" and second.text is None


def test_eval_paths_are_spelled_as_the_catalog_spells_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`..` and `.` fold away, so an eval file reached by a relative path still matches."""
    (tmp_path / "evals").mkdir()
    line = {"query": "a dog", "relevant": ["../img/./a.jpg", "/abs/x/../b.jpg"]}
    (tmp_path / "evals" / "e.jsonl").write_text(json.dumps(line) + "\n")
    monkeypatch.chdir(tmp_path / "evals")
    (query,) = load_eval_file(Path("../evals/e.jsonl"))
    assert query.relevant == (tmp_path / "img" / "a.jpg", Path("/abs/b.jpg"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 1: not valid JSON"),
        ('{"query": "x"}', "'relevant'"),
        ('{"query": "x", "query_image": "y", "relevant": ["a"]}', "exactly one"),
        ('{"query": " ", "relevant": ["a"]}', "non-empty"),
    ],
)
def test_bad_eval_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(EvalFileError, match=message):
        load_eval_file(path)


def test_a_binary_eval_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not text")
    with pytest.raises(EvalFileError, match="is not UTF-8 text"):
        load_eval_file(path)
