"""Chinese, emoji and odd bytes through the real CLI: queries, paths, tables and JSON."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.cells import cell_len
from rich.console import Console

from heron import Heron
from heron.interfaces.cli import app as cli
from tests.conftest import require_data, run_cli

pytestmark = pytest.mark.slow

ODD_NAME = "名字 with spaces & émoji 🐦.jpg"
BROKEN_NAME = "坏的 📷.jpg"
QUERY = "穿着连衣裙的小女孩"  # "a little girl in a dress", from photos/captions.jsonl
# utf8: a UTF-8 locale. c: Python turns on its UTF-8 mode by itself (PEP 540).
# c-ascii: PYTHONUTF8=0, so stdin, stdout and argv are ASCII unless the CLI says otherwise.
LOCALES = {
    "utf8": {},
    "c": {"LANG": "C", "LC_ALL": "C"},
    "c-ascii": {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0"},
}


@pytest.fixture(scope="module")
def cjk_index(heron_lite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Photos under CJK folders (one long, one with brackets), the odd-named JPEG and a file
    that is not an image, indexed."""
    root = tmp_path_factory.mktemp("unicode")
    album = root / "相册"
    deep = album / "很长的中文目录名称用于测试表格在管道里不折行"
    draft = album / "[draft] 草稿"
    deep.mkdir(parents=True)
    draft.mkdir()
    odd = deep / ODD_NAME
    shutil.copy(require_data("broken", ODD_NAME), odd)
    photos = sorted(require_data("photos").glob("*.jpg"))[1:4]  # [0] is the odd JPEG's twin
    for photo in photos[:2]:
        shutil.copy(photo, album / photo.name)
    shutil.copy(photos[2], draft / "草稿 🐦.jpg")
    broken = draft / BROKEN_NAME
    shutil.copy(require_data("broken", "not_an_image.jpg"), broken)
    data_dir = root / "data"  # with PYTHONUTF8=0 a CJK --data-dir reaches lancedb undecoded
    run_cli("index", str(album), data_dir=data_dir)
    return {"data_dir": data_dir, "odd": odd, "draft": draft, "broken": broken}


@pytest.fixture(params=sorted(LOCALES))
def locale(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The locale `run_cli`'s subprocess runs under (it copies os.environ)."""
    for name in ("LANG", "LC_ALL", "LC_CTYPE", "LANGUAGE", "PYTHONUTF8", "PYTHONIOENCODING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    for name, value in LOCALES[request.param].items():
        monkeypatch.setenv(name, value)
    return str(request.param)


def _table_rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "│" in line]


def test_index_json_lines_keep_cjk_paths_unescaped(
    cjk_index: dict, locale: str, tmp_path: Path
) -> None:
    album = cjk_index["odd"].parents[1]
    stdout = run_cli("index", str(album), "--json", data_dir=tmp_path / "data").stdout
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert "progress" in lines[0] and "report" in lines[-1]
    report = lines[-1]["report"]
    assert report["indexed"] == 4 and report["roots"] == [str(album)]
    assert [item["path"] for item in report["skipped_files"]] == [str(cjk_index["broken"])]
    assert "\\u" not in stdout and str(cjk_index["broken"]) in stdout


def test_search_prints_cjk_paths_whole_in_json_and_tables(cjk_index: dict, locale: str) -> None:
    data_dir, odd = cjk_index["data_dir"], cjk_index["odd"]
    found = run_cli("search", "--image", str(odd), "--k", "4", "--json", data_dir=data_dir)
    hits = found.stdout.split('"hits"')[1]  # (with PYTHONUTF8=0 argv's path is undecodable)
    assert f'"path": "{odd}"' in hits and "\\u" not in hits
    assert json.loads(found.stdout)["hits"][0]["path"] == str(odd)

    table = run_cli("search", "--image", str(odd), "--k", "4", data_dir=data_dir).stdout
    rows = _table_rows(table)
    assert len(rows) == 4, table  # one line per hit: in a pipe a long path is not folded
    assert str(odd) in rows[0]
    assert any(str(cjk_index["draft"] / "草稿 🐦.jpg") in row for row in rows)  # no markup
    assert len({cell_len(row) for row in rows}) == 1  # columns aligned (CJK and emoji: 2 cells)
    assert len({row.index("│") for row in rows}) == 1


def _api_hits(data_dir: Path) -> list[tuple[str, float]]:
    with Heron(data_dir) as heron:
        hits = heron.search(text=QUERY, k=4, min_relevance=0)
        return [(hit.path, round(hit.score, 4)) for hit in hits]


def test_a_chinese_query_runs_through_search(cjk_index: dict, locale: str) -> None:
    every = ("--k", "4", "--min-relevance", "0")  # four photos: all four, ranked
    result = run_cli("search", QUERY, *every, "--json", data_dir=cjk_index["data_dir"])
    assert f'"query": "{QUERY}"' in result.stdout
    report = json.loads(result.stdout)
    assert report["query"] == QUERY
    assert str(cjk_index["odd"]) in [hit["path"] for hit in report["hits"]]
    # Read as Chinese, not as bytes: the same hits and scores as the query given to the API.
    assert report["warnings"] == []
    expected = _api_hits(cjk_index["data_dir"])
    assert [(hit["path"], round(hit["score"], 4)) for hit in report["hits"]] == expected
    table = run_cli("search", QUERY, *every, data_dir=cjk_index["data_dir"])
    assert "4 results in" in table.stdout and str(cjk_index["odd"]) in table.stdout


def test_a_chinese_query_typed_into_the_shell(
    cjk_index: dict, locale: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERON_MIN_RELEVANCE", "0")
    odd = cjk_index["odd"]
    typed = f"{QUERY}\nimage:{odd}\n\n"
    result = run_cli("shell", data_dir=cjk_index["data_dir"], stdin=typed)  # strict UTF-8 decode
    assert result.stdout.count("4 results in") == 2, result.stdout + result.stderr
    assert "warning" not in result.stderr  # the bilingual model reads the query as Chinese
    rows = _table_rows(result.stdout)
    first = [path for path, _ in _api_hits(cjk_index["data_dir"])]
    assert all(path in "".join(rows[: len(first) + 2]) for path in first)
    assert sum(str(odd) in row for row in rows) == 2
    itself = [row for row in rows if f"│ image │ {odd}" in row and "│ 1.000 │" in row]
    assert itself  # the example finds itself


def test_stats_errors_and_get_print_cjk(cjk_index: dict, locale: str) -> None:
    data_dir, broken = cjk_index["data_dir"], cjk_index["broken"]
    stats = run_cli("stats", data_dir=data_dir).stdout
    assert str(data_dir) in stats and "agree  yes" in stats

    lines = run_cli("errors", data_dir=data_dir).stdout.splitlines()
    assert lines[0].startswith(f"skipped {broken}: ") and lines[-1] == "1 file(s) not indexed"
    listed = run_cli("errors", "--json", data_dir=data_dir).stdout
    assert str(broken) in listed and json.loads(listed)[0]["path"] == str(broken)

    found = run_cli(
        "search", "--image", str(cjk_index["odd"]), "--k", "1", "--json", data_dir=data_dir
    )
    unit_id = json.loads(found.stdout)["hits"][0]["id"]
    unit = run_cli("get", unit_id, data_dir=data_dir).stdout
    assert str(cjk_index["odd"]) in unit and "\\u" not in unit
    assert json.loads(unit)["paths"] == [str(cjk_index["odd"])]


def test_json_writer_escapes_only_what_utf8_cannot_carry(capsys: pytest.CaptureFixture) -> None:
    data = {"path": "/相册/caf\udce9 🐦.jpg", "lone": "\ud800"}
    cli._print_json(data)
    printed = capsys.readouterr().out
    assert printed == '{"path": "/相册/caf\\udce9 🐦.jpg", "lone": "\\ud800"}\n'
    assert json.loads(printed) == data


def test_a_long_cjk_path_folds_whole_characters_in_a_narrow_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = "/相册/[draft] 很长的中文目录名称/名字 with spaces & émoji 🐦🐦.jpg"
    screen = io.StringIO()
    console = Console(file=screen, width=44, force_terminal=True, color_system=None)
    monkeypatch.setattr(cli, "out", console)
    hit = SimpleNamespace(
        path=path, paths=[path], score=0.5, width=375, height=500, kind="image", pointer={},
        relevance=0.75,
    )  # fmt: skip
    cli._render_hits([hit], 12.0)
    rows = _table_rows(screen.getvalue())
    assert len(rows) > 1 and len({cell_len(row) for row in rows}) == 1
    assert all(cell_len(row) <= 44 for row in rows)
    folded = "".join(row.split("│")[4].strip() for row in rows)  # #, score, rel, kind, path
    assert folded.replace(" ", "") == path.replace(" ", "")  # all there, in order, none cut
