"""Documents, slides and video end to end: the real CLI over ../shared/data/docs and video."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_data, run_cli, run_json

# From page 21 of the Debian Edu manual (zh_CN).
MANUAL_SENTENCE = "可以使用网络上一个存在的 HTTP 代理服务来加速从 CD 安装主服务器设定配置"


@pytest.fixture(scope="module")
def library(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    docs, video = require_data("docs"), require_data("video")
    data_dir = tmp_path_factory.mktemp("docs") / "data"
    report = run_json("index", str(docs), str(video), data_dir=data_dir)["report"]
    return {"data_dir": data_dir, "report": report, "docs": docs, "video": video}


def _search(library: dict, *args: str) -> list[dict]:
    return run_json("search", *args, data_dir=library["data_dir"])["hits"]


def _page_count(path: Path) -> int:
    import pypdfium2

    document = pypdfium2.PdfDocument(path)
    try:
        return len(document)
    finally:
        document.close()


def _files(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file()]


def test_every_file_is_accounted_for_and_a_rerun_changes_nothing(library: dict) -> None:
    report = library["report"]
    indexable = [p for p in _files(library["docs"], library["video"]) if p.suffix != ".chatchat"]
    assert report["skipped"] == 0, report["skipped_files"]
    assert report["ignored"] == {".chatchat": 1}  # a licence file: no extractor reads it
    assert report["sources"] + report["linked"] == len(indexable) == report["seen"]
    kinds = report["units_by_kind"]
    assert set(kinds) == {"image", "page", "figure", "passage", "slide", "frame"}, kinds
    assert kinds["page"] == sum(_page_count(p) for p in indexable if p.suffix == ".pdf")
    stats = run_json("stats", data_dir=library["data_dir"])
    assert stats["consistent"] and stats["units_by_kind"] == kinds
    assert stats["sources_by_kind"]["pdf"] == 5 and stats["sources_by_kind"]["video"] == 5
    roots = (str(library["docs"]), str(library["video"]))
    again = run_json("index", *roots, data_dir=library["data_dir"])["report"]
    assert (again["indexed"], again["unchanged"], again["removed"]) == (0, report["seen"], 0)


def test_a_phrase_from_a_slide_returns_that_slide_with_its_number(library: dict) -> None:
    hits = _search(library, "--keyword", "Prioritizing what to work on", "--kind", "slide")
    assert hits, "no slide holds the phrase"
    top = hits[0]
    assert Path(top["path"]).name == "Lecture11.pptx" and top["kind"] == "slide"
    assert top["pointer"]["slide"] == 1 and top["locator"] == "slide=1"
    assert "Prioritizing what to work on" in top["excerpt"]


def test_a_figure_caption_returns_the_figure_with_page_and_box(library: dict) -> None:
    hits = _search(library, "--keyword", "Scatter Plot Example", "--kind", "figure")
    figures = [h for h in hits if Path(h["path"]).name == "elegantpaper-en.pdf"]
    assert figures, hits
    pointer = figures[0]["pointer"]
    assert pointer["page"] == 4
    x0, y0, x1, y1 = pointer["box"]
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and (x1 - x0) * (y1 - y0) > 0.02
    assert figures[0]["thumbnail"] and Path(figures[0]["thumbnail_path"]).is_file()


def test_a_sentence_from_the_chinese_manual_returns_its_page(library: dict) -> None:
    pages = _search(library, "--keyword", MANUAL_SENTENCE, "-k", "3")
    assert any(h["kind"] == "page" and h["pointer"]["page"] == 21 for h in pages), pages
    # By meaning too: a passage of that page (the text tower reads Chinese) in the top 3.
    meant = _search(library, MANUAL_SENTENCE, "-k", "3")
    assert any(
        h["pointer"].get("page", 0) <= 21 <= h["pointer"].get("last_page", h["pointer"].get("page"))
        and "debian" in h["path"]
        for h in meant
    ), meant


def test_passages_answer_text_queries_with_document_page_and_chunk(library: dict) -> None:
    hits = _search(library, "分布式训练中的数据并行与模型并行", "--kind", "passage", "-k", "5")
    assert hits and all(h["kind"] == "passage" for h in hits)
    assert any("分布式训练" in Path(h["path"]).name for h in hits), hits
    for hit in hits:
        pointer = hit["pointer"]
        assert pointer["end"] > pointer["start"] >= 0 and pointer["chunk"] >= 0
        assert hit["thumbnail"] is None and hit["excerpt"]


def test_a_video_hit_has_a_timecode_inside_its_shot(library: dict) -> None:
    hits = _search(library, "a white cockatoo parrot", "--kind", "frame", "-k", "3")
    assert hits and Path(hits[0]["path"]).name == "cockatoo.mp4", hits
    for hit in hits:
        pointer = hit["pointer"]
        assert pointer["shot_start"] <= pointer["time"] <= pointer["shot_end"]
        assert pointer["timecode"].startswith("00:00:")
    # every keyframe, relevant or not: this counts what extraction kept
    every = ("--min-relevance", "0", "--no-collapse")  # each keyframe, even near-identical ones
    frames = _search(library, "a rabbit", "--kind", "frame", "-k", "100", *every)
    bunny = [h for h in frames if Path(h["path"]).name == "bigbuckbunny.mp4"]
    assert 5 <= len(bunny) <= 40


def test_kinds_are_checked(library: dict) -> None:
    result = run_cli("search", "x", "--kind", "pages", data_dir=library["data_dir"], check=False)
    assert result.returncode == 1 and "unknown unit kind 'pages'" in result.stderr


def test_text_inside_pictures_of_every_format_is_found_with_ocr(
    heron_lite: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    run_cli("index", str(require_data("docs", "ocr")), "--ocr", data_dir=data_dir)
    hits = run_json("search", "--keyword", "竖向文本框", "-k", "20", data_dir=data_dir)["hits"]
    found = {Path(h["path"]).suffix for h in hits}
    assert found == {".jpg", ".pdf", ".pptx", ".docx"}, [(h["path"], h["kind"]) for h in hits]


def test_a_scanned_pdf_is_read_without_asking_and_not_with_no_ocr(
    heron_lite: Path, tmp_path: Path
) -> None:
    from PIL import Image

    folder = tmp_path / "scans"
    folder.mkdir()
    with Image.open(require_data("docs", "ocr", "ocr_test.jpg")) as picture:
        picture.convert("RGB").save(folder / "scan.pdf", resolution=72)  # an image-only page
    run_cli("index", str(folder), data_dir=tmp_path / "auto")
    hits = run_json("search", "--keyword", "竖向文本框", data_dir=tmp_path / "auto")["hits"]
    assert [(h["kind"], h["pointer"]["page"]) for h in hits][:1] == [("page", 1)], hits
    unit = json.loads(run_cli("get", hits[0]["id"], data_dir=tmp_path / "auto").stdout)
    assert unit["extra"]["ocr"] and all(len(line["box"]) == 4 for line in unit["extra"]["ocr"])
    run_cli("index", str(folder), "--no-ocr", data_dir=tmp_path / "off")
    assert run_json("search", "--keyword", "竖向文本框", data_dir=tmp_path / "off")["hits"] == []


def test_broken_documents_and_video_give_reasons_and_a_password_opens_the_pdf(
    heron_lite: Path, tmp_path: Path
) -> None:
    broken = require_data("broken")
    report = run_json("index", str(broken), data_dir=tmp_path / "a")["report"]
    reasons = {Path(item["path"]).name: item["reason"] for item in report["skipped_files"]}
    assert "password" in reasons["encrypted.pdf"]
    assert reasons["truncated.pdf"].startswith("damaged PDF")
    assert reasons["truncated.mp4"].startswith("damaged video")
    assert report["indexed"] == 2  # the PNG named .jpg and the emoji-named JPEG
    env_dir = tmp_path / "b"
    os.environ["HERON_PDF_PASSWORDS"] = "secret"
    try:
        opened = run_json("index", str(broken), data_dir=env_dir)["report"]
    finally:
        del os.environ["HERON_PDF_PASSWORDS"]
    assert "encrypted.pdf" not in {Path(i["path"]).name for i in opened["skipped_files"]}
    assert opened["units_by_kind"].get("page", 0) >= 1


def test_touching_a_pdf_rereads_only_it_and_a_changed_one_replaces_its_units(
    heron_lite: Path, tmp_path: Path
) -> None:
    from heron import Heron

    folder = tmp_path / "docs"
    folder.mkdir()
    paper = folder / "paper.pdf"
    shutil.copy(require_data("docs", "pdf", "elegantpaper-en.pdf"), paper)
    shutil.copy(require_data("docs", "pdf", "elegantpaper-cn.pdf"), folder / "other.pdf")
    data_dir = tmp_path / "data"
    first = run_json("index", str(folder), data_dir=data_dir)["report"]
    os.utime(paper)
    touched = run_json("index", str(folder), data_dir=data_dir)["report"]
    assert (touched["unchanged"], touched["linked"], touched["indexed"]) == (1, 1, 0)
    with Heron(data_dir) as heron:
        before = {r["id"] for r in heron.store.get(heron.store.ids()) if r["path"] == str(paper)}
    shutil.copy(require_data("docs", "pdf", "icmr2016_chisent.pdf"), paper)  # new content
    changed = run_json("index", str(folder), data_dir=data_dir)["report"]
    assert changed["unchanged"] == 1 and changed["sources"] == 1
    with Heron(data_dir) as heron:
        rows = heron.store.get(heron.store.ids())
        after = {r["id"] for r in rows if r["path"] == str(paper)}
        assert not before & after and len(rows) == first["indexed"] - len(before) + len(after)
        assert heron.stats().consistent


def test_killing_an_index_run_mid_document_leaves_each_source_with_exactly_its_units(
    heron_lite: Path, tmp_path: Path
) -> None:
    from heron import Heron
    from heron.extract.base import ExtractOptions, Source
    from heron.extract.registry import default_registry

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("elegantpaper-en.pdf", "elegantpaper-cn.pdf", "icmr2016_chisent.pdf"):
        (folder / name).symlink_to(require_data("docs", "pdf", name))
    (folder / "deck.pptx").symlink_to(require_data("docs", "slides", "Lecture5.pptx"))
    manual = require_data("docs", "pdf", "debian-edu-bookworm-manual.pdf")
    (folder / "manual.pdf").symlink_to(manual)
    data_dir = tmp_path / "data"
    cmd = [sys.executable, "-m", "heron.cli", "--data-dir", str(data_dir), "index", str(folder)]
    rng = random.Random(8)
    for _ in range(2):
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(4.0, 9.0))  # model load ~3 s, then the documents
        process.send_signal(signal.SIGKILL)
        process.wait()
    run_cli("index", str(folder), data_dir=data_dir)
    options = ExtractOptions(image_side=224)
    with Heron(data_dir) as heron:
        assert heron.stats().consistent
        rows = heron.store.get(heron.store.ids())
        for path in sorted(folder.iterdir()):
            source = Source.from_path(path)
            expected = {
                d.locator for d in default_registry().for_source(source).extract(source, options)
            }
            stored = [r["locator"] for r in rows if r["path"] == str(path)]
            assert sorted(stored) == sorted(expected), path.name
        assert json.loads(rows[0]["pointer"]) is not None
