from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import pytest

from heron.ingest.crawl import CrawlEntry, CrawlProblem, hidden_below, walk
from tests.conftest import require_data


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _entries(events: list) -> list[Path]:
    return [e.path for e in events if isinstance(e, CrawlEntry)]


def _problems(events: list) -> list[CrawlProblem]:
    return [e for e in events if isinstance(e, CrawlProblem)]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for name in [
        "b.jpg",
        "a.PNG",
        "notes.txt",
        "sub/z.heic",
        "sub/deeper/c.webp",
        "sub/readme.md",
        "a_dir/x.gif",
        ".hidden.jpg",
        ".cache/thumb.jpg",
        "sub/.secret/s.jpg",
        "text_named.jpg",
    ]:
        _touch(root / name)
    return root


def test_walk_yields_images_sorted_with_stat(tree: Path) -> None:
    events = list(walk([tree]))
    assert _problems(events) == []
    assert [p.relative_to(tree).as_posix() for p in _entries(events)] == [
        "a.PNG",
        "a_dir/x.gif",
        "b.jpg",
        "sub/deeper/c.webp",
        "sub/z.heic",
        "text_named.jpg",  # not checked for content here: decode gives it a skip reason
    ]
    entry = next(e for e in events if isinstance(e, CrawlEntry) and e.path.name == "b.jpg")
    info = (tree / "b.jpg").stat()
    assert (entry.size, entry.mtime_ns) == (info.st_size, info.st_mtime_ns)
    assert entry.path.is_absolute()


def test_hidden_files_and_folders(tree: Path) -> None:
    names = {p.name for p in _entries(list(walk([tree])))}
    assert not names & {".hidden.jpg", "thumb.jpg", "s.jpg"}
    names = {p.name for p in _entries(list(walk([tree], include_hidden=True)))}
    assert {".hidden.jpg", "thumb.jpg", "s.jpg"} <= names


def test_suffix_filter(tree: Path) -> None:
    only = _entries(list(walk([tree], suffixes={"jpg", ".Webp"})))
    assert [p.name for p in only] == ["b.jpg", "c.webp", "text_named.jpg"]


def test_single_file_root_and_relative_root(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _entries(list(walk([tree / "sub" / "z.heic"]))) == [tree / "sub" / "z.heic"]
    monkeypatch.chdir(tree)
    assert _entries(list(walk([Path("sub/deeper")]))) == [tree / "sub/deeper/c.webp"]
    (problem,) = list(walk([tree / "notes.txt"]))
    assert isinstance(problem, CrawlProblem) and problem.kind == "unsupported"


def test_missing_root(tmp_path: Path) -> None:
    (problem,) = list(walk([tmp_path / "nowhere"]))
    assert isinstance(problem, CrawlProblem) and problem.kind == "missing"


def test_overlapping_roots_yield_each_file_once(tree: Path) -> None:
    paths = _entries(list(walk([tree / "sub", tree, tree / "b.jpg"])))
    assert len(paths) == len(set(paths)) == 6


def test_symlink_loop_reported_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _touch(root / "a" / "one.jpg")
    (root / "a" / "back").symlink_to(root, target_is_directory=True)
    (root / "a" / "self").symlink_to(root / "a", target_is_directory=True)

    events = list(walk([root]))

    assert _entries(events) == [root / "a" / "one.jpg"]
    loops = _problems(events)
    assert [(p.path.name, p.kind) for p in loops] == [("back", "loop"), ("self", "loop")]
    assert all("loop" in p.reason for p in loops)


def test_symlinked_folder_keeps_link_path_and_dedupes(tmp_path: Path) -> None:
    real = tmp_path / "real"
    _touch(real / "p.jpg")
    root = tmp_path / "root"
    root.mkdir()
    (root / "album").symlink_to(real, target_is_directory=True)
    (root / "zz_again").symlink_to(real, target_is_directory=True)
    (root / "linked.jpg").symlink_to(real / "p.jpg")

    events = list(walk([root]))

    assert _entries(events) == [root / "album" / "p.jpg", root / "linked.jpg"]
    (duplicate,) = _problems(events)
    assert duplicate.kind == "duplicate" and duplicate.path == root / "zz_again"


def test_self_referencing_symlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("me.jpg", root / "me.jpg")
    (problem,) = list(walk([root]))
    assert problem.kind == "loop" and problem.path == root / "me.jpg"


def test_broken_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (root / "gone_dir").symlink_to(tmp_path / "deleted_dir")
    (root / "notes.txt").symlink_to(tmp_path / "deleted.txt")  # not ours to report

    events = list(walk([root]))

    assert _entries(events) == []
    problems = _problems(events)
    assert [(p.path.name, p.kind) for p in problems] == [
        ("gone.jpg", "broken_link"),
        ("gone_dir", "broken_link"),
    ]
    assert str(tmp_path / "deleted.jpg") in problems[0].reason
    (root_problem,) = list(walk([root / "gone.jpg"]))
    assert root_problem.kind == "broken_link"


def test_special_files_are_not_yielded(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe.jpg")  # opening it for reading would block the decoder forever
    assert list(walk([root])) == []


def test_unreadable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    _touch(root / "ok.jpg")
    locked = root / "locked"
    _touch(locked / "x.jpg")
    real_scandir = os.scandir

    def scandir(path):  # chmod 0 does not stop root, so refuse the way the kernel would
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr("heron.ingest.crawl.os.scandir", scandir)
    events = list(walk([root]))
    assert _entries(events) == [root / "ok.jpg"]
    (problem,) = _problems(events)
    assert problem.kind == "unreadable" and problem.path == locked
    assert problem.reason == "cannot read folder: Permission denied"


def test_deep_tree_does_not_recurse(tmp_path: Path) -> None:
    deep = tmp_path
    for _ in range(300):
        deep = deep / "d"
        deep.mkdir()
    _touch(deep / "bottom.jpg")
    limit = sys.getrecursionlimit()
    # A recursive walker would need ~300 frames beyond the current depth; allow 100.
    sys.setrecursionlimit(len(inspect.stack(0)) + 100)
    try:
        entries = _entries(list(walk([tmp_path])))
    finally:
        sys.setrecursionlimit(limit)
    assert entries == [deep / "bottom.jpg"]


def test_shared_broken_folder() -> None:
    broken = require_data("broken")
    events = list(walk([broken]))
    names = [p.name for p in _entries(events)]
    assert names == sorted(names)
    assert "名字 with spaces & émoji 🐦.jpg" in names and "empty.jpg" in names
    assert "encrypted.pdf" not in names and "truncated.mp4" not in names
    link = broken / "loop_dir" / "parent_link"
    if link.is_symlink():  # this copy of the data may hold a plain file instead of the link
        assert [(p.path, p.kind) for p in _problems(events)] == [(link, "loop")]
    else:
        assert _problems(events) == []


def test_hidden_below_looks_only_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / ".config" / "pics"
    assert not hidden_below(root / "a.jpg", [root])  # a dot above the root does not count
    assert hidden_below(root / ".cache" / "a.jpg", [root])
    assert hidden_below(root / ".a.jpg", [root])
    assert not hidden_below(tmp_path / "elsewhere" / ".a.jpg", [root])
