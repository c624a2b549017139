"""The DOCX, Markdown and text/HTML extractors: passages, headings, figures, hostile files.

Real documents come from the shared material (a Chinese DOCX with captions and math, Chinese
Markdown notes with an img/ folder, a DOCX whose words are only in a picture); the hostile
cases (escaping references, symlinks, encodings, empty and binary files) are written to
tmp_path.
"""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
from PIL import Image

from heron.extract.base import ExtractOptions, Source, UnitDraft
from heron.extract.documents import (
    decode_text,
    docx_extractor,
    markdown_extractor,
    text_extractor,
)
from heron.extract.errors import SkipFile
from tests.conftest import require_data

OPTIONS = ExtractOptions()
EXTRACTORS = (docx_extractor, markdown_extractor, text_extractor)


def extract(path: Path, options: ExtractOptions = OPTIONS) -> list[UnitDraft]:
    source = Source.from_path(path)
    extractor = next(e for e in EXTRACTORS if e.recognises(source))
    return list(extractor.extract(source, options))


def passages(units: list[UnitDraft]) -> list[UnitDraft]:
    return [u for u in units if u.kind == "passage"]


def figures(units: list[UnitDraft]) -> list[UnitDraft]:
    return [u for u in units if u.kind == "figure"]


def assert_passages_index_one_text(units: list[UnitDraft]) -> None:
    """Consecutive passages overlap, and agree on the characters they share."""
    chunks = passages(units)
    for index, passage in enumerate(chunks):
        start, end = passage.pointer["start"], passage.pointer["end"]
        assert passage.locator == f"chars={start}-{end}"
        assert passage.pointer["chunk"] == index
        assert (passage.embed, passage.thumbnail) == ("text", "none")
        assert len(passage.text) <= end - start
    for before, after in itertools.pairwise(chunks):
        shift = after.pointer["start"] - before.pointer["start"]
        assert shift > 0 and after.pointer["start"] < before.pointer["end"], "no overlap"
        shared = before.text[shift:]
        assert shared and after.text.startswith(shared)


def write_png(path: Path, size: tuple[int, int], colour: str = "navy") -> Path:
    Image.new("RGB", size, colour).save(path, "PNG")
    return path


def png_bytes(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, "PNG")
    return buffer.getvalue()


# --- DOCX ---


@pytest.fixture(scope="module")
def math_notes() -> list[UnitDraft]:
    return extract(require_data("docs", "text", "机器学习的数学基础.docx"))


def test_docx_passages_hold_its_chinese_text(math_notes: list[UnitDraft]) -> None:
    texts = [p.text for p in passages(math_notes)]
    assert len(texts) > 20
    sentence = "线性代数提供了一种紧凑地表示和操作线性方程组的方法。"
    (hit,) = [p for p in passages(math_notes) if sentence in p.text][:1]
    assert hit.format == "docx"
    assert_passages_index_one_text(math_notes)
    # Headings stay in the text and name the passages under them; the TOC is left out.
    assert any("2. 矩阵乘法\n\n" in t for t in texts)
    headed = [p for p in passages(math_notes) if p.pointer.get("heading") == "2.1 向量-向量乘法"]
    assert headed and "2.1 向量-向量乘法" in headed[0].text  # the first one under it starts it
    assert not any(re.search(r"矩阵乘法\t\d", t) for t in texts)
    # Inline math (OMML) is read as text rather than leaving holes in sentences.
    assert any("A∈Rm×n" in t for t in texts)
    assert passages(math_notes)[0].fields["figures"] == 5


def test_docx_figures_carry_captions(math_notes: list[UnitDraft]) -> None:
    found = figures(math_notes)
    assert [f.pointer["figure"] for f in found] == sorted(f.pointer["figure"] for f in found)
    assert len(found) >= 4
    determinant = next(f for f in found if "行列式" in f.text)
    assert determinant.text.startswith("图1：给出的2×2矩阵A的行列式的图示")
    assert determinant.pointer["heading"] == "3.10 行列式"
    assert (
        determinant.read_text and determinant.locator == f"figure={determinant.pointer['figure']}"
    )
    assert all(min(f.width, f.height) >= OPTIONS.min_figure_side for f in found)
    assert all(len(f.text) <= 510 for f in found)
    # A figure's offset falls inside the text the passages cover.
    last_end = passages(math_notes)[-1].pointer["end"]
    assert all(0 <= f.pointer["start"] <= last_end for f in found)


def test_docx_whose_words_are_in_a_picture() -> None:
    units = extract(require_data("docs", "ocr", "ocr_test.docx"))
    (passage,) = passages(units)
    assert passage.text.startswith("我是文字")
    assert "我是表格1 | 我是表格2" in passage.text
    (figure,) = figures(units)
    assert figure.read_text and (figure.width, figure.height) == (298, 210)
    assert figure.format == "docx" and "我是表格" in figure.text


def build_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Heron field notes"
    document.add_heading("Wading birds", level=1)
    document.add_paragraph("Herons stand still in shallow water for a long time.")
    document.add_picture(io.BytesIO(png_bytes((320, 200))))
    document.add_paragraph("Figure 1: a grey heron at dawn.")
    document.add_heading("Kingfishers", level=2)
    document.add_paragraph("Kingfishers dive from a perch.")
    document.add_picture(io.BytesIO(png_bytes((40, 40))))  # an icon: not a figure
    document.save(path)
    return path


def test_docx_built_headings_and_caption(tmp_path: Path) -> None:
    units = extract(build_docx(tmp_path / "notes.docx"))
    (passage,) = passages(units)
    assert passage.text.startswith("Wading birds\n\nHerons stand still")
    assert "\n\nKingfishers\n\nKingfishers dive" in passage.text
    assert passage.fields["title"] == "Heron field notes" and passage.fields["figures"] == 2
    (figure,) = figures(units)
    assert figure.text.startswith("Figure 1: a grey heron at dawn.")
    assert "Herons stand still" in figure.text
    assert figure.pointer["heading"] == "Wading birds"
    start = figure.pointer["start"]
    assert passage.text[start - len("long time.") : start] == "long time."


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "encrypted or legacy (OLE) Word"),
        (b"PK\x03\x04 truncated", "broken Word file"),
        (b"", "empty file"),
    ],
)
def test_docx_refusals(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.docx"
    path.write_bytes(content)
    source = Source.from_path(path)
    assert not docx_extractor.recognises(source)
    with pytest.raises(SkipFile, match=re.escape(reason)):
        list(docx_extractor.extract(source, OPTIONS))


def test_empty_docx_is_skipped(tmp_path: Path) -> None:
    import docx

    path = tmp_path / "blank.docx"
    docx.Document().save(path)
    with pytest.raises(SkipFile, match="no text or pictures in this document"):
        extract(path)


# --- Markdown ---

NOTES = ("docs", "text", "llm_notes_zh")


def test_markdown_figures_resolve_to_img_files() -> None:
    path = require_data(*NOTES, "分布式训练技术原理.md")
    units = extract(path)
    found = figures(units)
    assert len(found) == 10
    for figure in found:
        src = figure.pointer["src"]
        assert src.startswith("./img/分布式训练技术原理-幕布图片-")
        assert (path.parent / src).is_file()
        assert figure.format == "md" and figure.read_text
    first = found[0]
    assert first.pointer["src"].endswith("36114-765327.jpg")
    assert first.text.startswith("图片\n")  # the alt text, then the list item before it
    assert "对第一个线性层按列切分，对第二个线性层按行切分" in first.text
    assert passages(units)[0].fields["figures"] == 10


def test_markdown_text_is_stripped_of_syntax() -> None:
    units = extract(require_data(*NOTES, "分布式训练技术原理.md"))
    text = "\n".join(p.text for p in passages(units))
    assert text.startswith("分布式训练技术原理\n\n数据并行\nFSDP\n")
    assert "在每个设备上维护一个模型副本" in text
    for syntax in ("**", "![", "](", "- FSDP", "# "):
        assert syntax not in text
    assert_passages_index_one_text(units)


def test_markdown_passages_per_file() -> None:
    folder = require_data(*NOTES)
    counts = {p.name: len(passages(extract(p))) for p in sorted(folder.glob("*.md"))}
    assert len(counts) == 6 and all(n >= 1 for n in counts.values())
    assert counts["大模型技术栈-算法与原理.md"] > 10


def test_markdown_references_stay_inside_the_folder(tmp_path: Path) -> None:
    outside = write_png(tmp_path / "secret.png", (200, 200), "red")
    folder = tmp_path / "notes"
    (folder / "img").mkdir(parents=True)
    write_png(folder / "img" / "heron at dawn.png", (300, 200))
    write_png(folder / "img" / "icon.png", (20, 20))
    (folder / "img" / "sneaky.png").symlink_to(outside)
    (folder / "img" / "loop").symlink_to(folder / "img", target_is_directory=True)
    document = folder / "note.md"
    document.write_text(
        "# Herons\n\n"
        "Some *emphasis* and a [link](https://example.org) here.\n\n"
        "![A heron at dawn](img/heron%20at%20dawn.png)\n\n"
        "Figure 2: the pond at first light.\n\n"
        "![passwd](../../etc/passwd) ![root](/etc/passwd) ![up](../secret.png)\n"
        "![link](img/sneaky.png) ![gone](img/missing.png) ![web](https://example.org/a.png)\n"
        "![icon](img/icon.png) ![again](img/loop/heron%20at%20dawn.png)\n",
        encoding="utf-8",
    )
    units = extract(document)
    (passage,) = passages(units)
    assert passage.text.startswith("Herons\n\nSome emphasis and a link here.")
    counts = {k: v for k, v in passage.fields.items() if k.startswith("figures")}
    # Nine references, eight pictures: img/loop/ is a symlink inside the folder, back to img/.
    assert counts == {
        "figures": 8,
        "figures_outside": 4,
        "figures_missing": 1,
        "figures_remote": 1,
    }
    (figure,) = figures(units)
    assert figure.pointer["src"] == "img/heron at dawn.png"
    assert figure.pointer["figure"] == 1 and (figure.width, figure.height) == (300, 200)
    assert figure.text.startswith("A heron at dawn\nFigure 2: the pond at first light.")


def test_markdown_with_only_unusable_pictures_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_text("![x](missing.png)\n\n<!-- nothing -->\n", encoding="utf-8")
    with pytest.raises(SkipFile, match="no text or pictures"):
        extract(path)


def test_markdown_html_and_tables(tmp_path: Path) -> None:
    write_png(tmp_path / "chart.png", (240, 160))
    path = tmp_path / "mixed.md"
    path.write_text(
        "| bird | wingspan |\n|---|---|\n| heron | 1.8 m |\n\n"
        '<div><p>Raw HTML block</p><img src="chart.png" alt="wingspan chart"></div>\n\n'
        "```\ncode stays as written\n```\n",
        encoding="utf-8",
    )
    units = extract(path)
    (passage,) = passages(units)
    assert "bird | wingspan\nheron | 1.8 m" in passage.text
    assert "Raw HTML block" in passage.text and "<p>" not in passage.text
    assert "code stays as written" in passage.text
    (figure,) = figures(units)
    assert figure.text.startswith("wingspan chart") and figure.pointer["src"] == "chart.png"


def test_long_text_passages_overlap(tmp_path: Path) -> None:
    sentences = [f"Sentence number {n} talks about herons and egrets." for n in range(200)]
    path = tmp_path / "long.md"
    path.write_text("# Long\n\n" + " ".join(sentences), encoding="utf-8")
    units = extract(path, ExtractOptions(passage_chars=300, passage_overlap=60))
    assert len(passages(units)) > 20
    assert_passages_index_one_text(units)
    assert all(p.pointer["heading"] == "Long" for p in passages(units))


# --- text and HTML ---


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8", "utf-8-sig", "utf-16", "utf-16-be"])
def test_text_encodings(tmp_path: Path, encoding: str) -> None:
    text = "机器学习是人工智能的一个分支。\n第二行：苍鹭站在浅水里。\n"
    path = tmp_path / "notes.txt"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # Python writes no BOM for an explicit byte order
    path.write_bytes(data)
    source = Source.from_path(path)
    assert text_extractor.recognises(source)
    (passage,) = passages(list(text_extractor.extract(source, OPTIONS)))
    assert passage.text == text.strip() and passage.format == "txt"
    expected = {"utf-8-sig": "utf-8", "utf-16-be": "utf-16"}.get(encoding, encoding)
    assert passage.fields["encoding"] == expected


def test_text_offsets_index_the_decoded_file(tmp_path: Path) -> None:
    text = "\n\n  " + "苍鹭。" * 600
    path = tmp_path / "herons.txt"
    path.write_text(text, encoding="utf-8")
    units = extract(path)
    for passage in passages(units):
        start, end = passage.pointer["start"], passage.pointer["end"]
        assert text[start:end].strip() == passage.text
    assert_passages_index_one_text(units)


@pytest.mark.parametrize(
    ("content", "recognised", "reason"),
    [
        (b"", False, "empty file"),
        (b"   \n\n ", True, "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", False, "not text"),
        (b"abc \x80\x81\xff\xfe\xfd", False, "not text: neither UTF-8, UTF-16 nor GB18030"),
    ],
)
def test_text_refusals(tmp_path: Path, content: bytes, recognised: bool, reason: str) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes(content)
    source = Source.from_path(path)
    assert text_extractor.recognises(source) is recognised
    with pytest.raises(SkipFile, match=re.escape(reason)):
        list(text_extractor.extract(source, OPTIONS))


def test_decode_text_order() -> None:
    assert decode_text("鹭".encode("gb18030")) == ("鹭", "gb18030")
    assert decode_text(b"caf\xc3\xa9") == ("café", "utf-8")
    assert decode_text(b"caf\xe9!", declared="windows-1252") == ("café!", "windows-1252")
    assert decode_text("x\r\ny".encode("utf-16")) == ("x\ny", "utf-16")


HTML = """<!DOCTYPE html>
<html><head><title>Heron page</title><style>.x { color: red }</style></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About navigation</a></nav>
<script>var hidden = "script text";</script>
<h1>Grey herons</h1>
<p>The grey heron is a long-legged
   wading bird.</p><p>It hunts <b>fish</b> and frogs.</p>
<figure><img src="img/heron.png" alt="heron standing"><figcaption>A heron in reeds</figcaption>
</figure>
<img src="https://example.org/remote.png" alt="remote">
<table><tr><th>Name</th><th>Length</th></tr><tr><td>grey heron</td><td>1 m</td></tr></table>
<ul><li>first item</li><li>second item</li></ul>
</body></html>
"""


def test_html_is_recognised_by_content_and_cleaned(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    write_png(tmp_path / "img" / "heron.png", (256, 192))
    path = tmp_path / "page.dat"  # not an HTML name: the content decides
    path.write_text(HTML, encoding="utf-8")
    source = Source.from_path(path)
    assert text_extractor.recognises(source) and not markdown_extractor.recognises(source)
    units = list(text_extractor.extract(source, OPTIONS))
    (passage,) = passages(units)
    text = passage.text
    assert text.startswith("Grey herons\n\nThe grey heron is a long-legged wading bird.\n")
    assert "It hunts fish and frogs." in text
    assert "Name | Length\ngrey heron | 1 m" in text and "first item\nsecond item" in text
    for dropped in ("script text", "navigation", "color: red", "<"):
        assert dropped not in text
    assert passage.fields["title"] == "Heron page" and passage.fields["figures_remote"] == 1
    (figure,) = figures(units)
    assert figure.text.startswith("heron standing\nA heron in reeds")
    assert figure.pointer["src"] == "img/heron.png" and figure.format == "html"
    assert figure.pointer["heading"] == "Grey herons"


def test_html_declared_charset_and_deep_nesting(tmp_path: Path) -> None:
    body = "<div>" * 5000 + "Reiher am Teich: café" + "</div>" * 5000
    html = f'<html><head><meta charset="windows-1252"></head><body>{body}</body></html>'
    path = tmp_path / "deep.html"
    path.write_bytes(html.encode("cp1252"))
    (passage,) = passages(extract(path))
    assert passage.text == "Reiher am Teich: café"
    assert passage.fields["encoding"] == "cp1252"


def test_markdown_is_recognised_only_by_a_text_suffix(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(b"# Title\n\x00binary")
    assert not markdown_extractor.recognises(Source.from_path(path))
    renamed = tmp_path / "notes.bin"
    renamed.write_text("# Title\n", encoding="utf-8")
    assert not markdown_extractor.recognises(Source.from_path(renamed))


def test_wrapped_lines_join_like_a_browser(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.md"
    path.write_text("Herons wade\nin ponds.\n\n苍鹭站在\n浅水里。\n", encoding="utf-8")
    (passage,) = passages(extract(path))
    assert passage.text == "Herons wade in ponds.\n苍鹭站在浅水里。"
    page = tmp_path / "wrapped.html"
    page.write_text("<p>苍鹭站在\n  浅水里。</p><p>Herons\n  wade.</p>", encoding="utf-8")
    (passage,) = passages(extract(page))
    assert passage.text == "苍鹭站在浅水里。\nHerons wade."
