"""The extractor seam: choosing by content, add-ons registered like the built-ins, passages."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from heron.extract.base import ExtractOptions, IncompleteSource, Source, UnitDraft
from heron.extract.passages import WIDE_WEIGHT, cut_passages
from heron.extract.registry import BUILTIN, Registry, default_registry
from tests.conftest import require_data


def _source(path: Path) -> Source:
    return Source.from_path(path)


def test_content_decides_over_the_name(tmp_path: Path) -> None:
    registry = default_registry()
    assert registry.names()[: len(BUILTIN)] == [
        "image",
        "pdf",
        "pptx",
        "docx",
        "markdown",
        "text",
        "video",
    ]
    pdf_named_jpg = tmp_path / "scan.jpg"
    pdf_named_jpg.write_bytes(require_data("docs", "pdf", "elegantpaper-en.pdf").read_bytes())
    assert registry.for_source(_source(pdf_named_jpg)).name == "pdf"
    png = require_data("broken", "really_a_png.jpg")
    assert registry.for_source(_source(png)).name == "image"
    deck_named_docx = tmp_path / "deck.docx"
    deck_named_docx.write_bytes(require_data("docs", "slides", "Lecture5.pptx").read_bytes())
    assert registry.for_source(_source(deck_named_docx)).name == "pptx"
    # Content nobody recognises goes to whoever claims the name, to say why it cannot be read.
    assert registry.for_source(_source(require_data("broken", "not_an_image.jpg"))).name == "image"
    odd = tmp_path / "notes.xyz"
    odd.write_text("hello")
    assert registry.for_source(_source(odd)) is None
    assert {".pdf", ".pptx", ".docx", ".md", ".txt", ".html", ".mp4", ".jpg"} <= registry.suffixes()


def test_an_extractor_that_cannot_load_is_kept_as_a_reason() -> None:
    registry = Registry()
    registry.load("heron.extract.no_such_module:extractor")
    registry.load("heron.extract.images:no_such_attribute")
    assert registry.names() == []
    assert [u.reference for u in registry.unavailable] == [
        "heron.extract.no_such_module:extractor",
        "heron.extract.images:no_such_attribute",
    ]
    with pytest.raises(TypeError, match="does not implement"):
        registry.register(object())  # type: ignore[arg-type]


class NoteExtractor:
    """An add-on: `.note` files, one passage per line; a line `BREAK` stops with a reason."""

    name = "note"
    suffixes = frozenset({".note"})

    def recognises(self, source: Source) -> bool:
        return source.head.startswith(b"NOTE\n")

    def extract(self, source: Source, options: ExtractOptions) -> Iterator[UnitDraft]:
        lines = source.read_bytes().decode().splitlines()[1:]
        for number, line in enumerate(lines, start=1):
            if line == "BREAK":
                raise IncompleteSource(f"line {number} is a BREAK")
            if line == "CRASH":
                raise RuntimeError("the add-on has a bug")
            yield UnitDraft(
                kind="passage",
                locator=f"line={number}",
                text=line,
                embed="text",
                thumbnail="none",
                pointer={"chunk": number - 1},
                format="note",
            )


def test_an_add_on_extractor_indexes_through_the_whole_pipeline(
    heron_lite: Path, tmp_path: Path
) -> None:
    from heron import Heron

    registry = default_registry()
    registry.register(NoteExtractor())
    try:
        folder = tmp_path / "notes"
        folder.mkdir()
        (folder / "a.note").write_text("NOTE\na dog running on the beach\nred sports car\n")
        (folder / "b.note").write_text("NOTE\nsnowy mountain\nBREAK\nnever read\n")
        (folder / "c.note").write_text("NOTE\nCRASH\n")
        with Heron(tmp_path / "data") as heron:
            report = heron.index([folder])
            assert report.units_by_kind == {"passage": 3} and report.sources == 2
            assert [Path(i["path"]).name for i in report.incomplete] == ["b.note"]
            (skipped,) = report.skipped_files
            assert Path(skipped["path"]).name == "c.note"
            assert "unexpected error while extracting: RuntimeError" in skipped["reason"]
            hits = heron.search(text="a car", k=1, kind="passage")
            assert (Path(hits[0].path).name, hits[0].locator) == ("a.note", "line=2")
            assert hits[0].pointer == {"chunk": 1} and hits[0].thumbnail is None
            errors = {Path(r.path).name: (r.status, r.reason) for r in heron.errors()}
            assert errors["b.note"] == ("indexed", "line 2 is a BREAK")
            assert heron.stats().sources_by_kind == {"note": 2}
            assert heron.index([folder]).indexed == 0  # unchanged
    finally:
        registry.unregister("note")
    assert "note" not in registry.names()


def test_passages_cover_the_text_with_overlap_at_boundaries() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(200))
    passages = cut_passages(text, size=300, overlap=60)
    assert all(text[p.start : p.end].strip() == p.text for p in passages)
    assert passages[0].start == 0 and passages[-1].end == len(text)
    for before, after in itertools.pairwise(passages):
        assert after.start < before.end  # overlap
        assert before.end - after.start <= 60
        assert text[after.start - 1] == " "  # starts at a word
    assert all(len(p.text) <= 300 for p in passages)


def test_chinese_passages_are_sized_like_tokens() -> None:
    text = "分布式训练需要把模型和数据切分到多张显卡上。" * 100  # 22 characters a sentence
    passages = cut_passages(text, size=1000, overlap=150)
    assert all(len(p.text) <= 1000 // WIDE_WEIGHT for p in passages)
    assert all(p.text.endswith("。") for p in passages[:-1])  # cut after a sentence
