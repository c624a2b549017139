"""File names that are not valid UTF-8 (b"caf\\xe9.jpg" from an old Windows share) index like any
other: stored and shown with `\\xNN` escapes, found again on the next run, deletable, searchable."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from heron import Heron
from heron.util.paths import on_disk, stored_text
from tests.conftest import require_data, run_cli

LATIN1_NAME = b"caf\xe9.jpg"  # "café.jpg" written by a Latin-1 system
SHOWN = "caf\\xe9.jpg"  # the text Heron stores and prints for it


def _photos(count: int) -> list[Path]:
    return sorted(require_data("photos").glob("*.jpg"))[:count]


def _undecodable_folder(root: Path) -> tuple[Path, str]:
    """A folder with one valid and one undecodable JPEG name; returns it and the latter's path."""
    folder = root / "pics"
    folder.mkdir()
    first, second = _photos(2)
    shutil.copyfile(first, folder / "plain.jpg")
    undecodable = os.path.join(os.fsencode(folder), LATIN1_NAME)
    shutil.copyfile(second, undecodable)
    return folder, os.fsdecode(undecodable)


def test_stored_text_escapes_undecodable_bytes_and_on_disk_reverses_it(tmp_path: Path) -> None:
    path = os.fsdecode(os.path.join(os.fsencode(tmp_path), LATIN1_NAME))
    assert "\udce9" in path
    text = stored_text(path)
    assert text == f"{tmp_path}/{SHOWN}" and text.encode("utf-8")
    assert stored_text(text) == text  # idempotent
    assert stored_text("/photos/été/ok.jpg") == "/photos/été/ok.jpg"  # valid names unchanged
    assert stored_text("lone \ud800") == "lone \\ud800"  # not a file name, still printable text
    assert on_disk(text) == path
    Path(path).write_bytes(b"x")
    assert on_disk(text) == path
    literal = tmp_path / "literal\\xe9.jpg"  # a valid name holding a backslash escape itself
    literal.write_bytes(b"x")
    assert on_disk(str(literal)) == str(literal)
    assert on_disk("/plain/name.jpg") == "/plain/name.jpg"


def test_api_indexes_an_undecodable_name_once_and_finds_and_deletes_it(
    heron_lite: Path, tmp_path: Path
) -> None:
    folder, undecodable = _undecodable_folder(tmp_path)
    shown = f"{folder}/{SHOWN}"
    with Heron(tmp_path / "data") as heron:
        first = heron.index([folder])
        assert (first.indexed, first.skipped, first.problems) == (2, 0, [])
        second = heron.index([folder])
        assert (second.unchanged, second.indexed, second.linked, second.removed) == (2, 0, 0, 0)
        assert heron.count() == 2 and heron.stats().consistent
        assert heron.stats().files == {"indexed": 2}

        hits = heron.search(image=undecodable, k=1)
        assert hits[0].path == shown and hits[0].paths == [shown] and hits[0].score > 0.99
        unit = heron.get(hits[0].id)
        assert unit is not None and unit.path == shown and unit.text == "caf\\xe9"
        json.dumps(unit.to_dict()).encode("utf-8")

        assert heron.delete([undecodable]) == 1  # the path as the file system spells it
        assert heron.count() == 1
        assert heron.index([folder]).indexed == 1
        assert heron.delete([shown]) == 1  # and as Heron shows it
        assert heron.count() == 1 and heron.stats().consistent


def test_api_keeps_an_undecodable_hidden_file_and_prunes_it_once_gone(
    heron_lite: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pics"
    hidden = os.path.join(os.fsencode(folder), b".h\xe9", LATIN1_NAME)
    os.makedirs(os.path.dirname(hidden))
    shutil.copyfile(_photos(1)[0], hidden)
    with Heron(tmp_path / "data") as heron:
        assert heron.index([folder], include_hidden=True).indexed == 1
        kept = heron.index([folder], include_hidden=False)  # looks the stored path up on disk
        assert (kept.removed, heron.count()) == (0, 1)
        os.remove(hidden)
        gone = heron.index([folder], include_hidden=False)
        assert (gone.removed, heron.count()) == (1, 0)


def test_cli_indexes_lists_and_deletes_undecodable_names(heron_lite: Path, tmp_path: Path) -> None:
    folder, undecodable = _undecodable_folder(tmp_path)
    folder_bytes = os.fsencode(folder)
    with open(os.path.join(folder_bytes, b"notes\xff.jpg"), "wb") as handle:
        handle.write(b"not a picture")
    os.symlink(b"/nowhere/\xe9.jpg", os.path.join(folder_bytes, b"link\xe9.jpg"))
    data_dir = tmp_path / "data"

    printed = run_cli("index", str(folder), data_dir=data_dir)
    assert "Traceback" not in printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0].startswith("done in ") and "2 embedded" in lines[0] and "1 skipped" in lines[0]
    assert f"  skipped {folder}/notes\\xff.jpg: not an image (content is text)" in lines
    assert f"  problem {folder}/link\\xe9.jpg: broken symlink to /nowhere/\\xe9.jpg" in lines

    again = run_cli("index", str(folder), "--json", data_dir=data_dir)
    report = json.loads(again.stdout.splitlines()[-1])["report"]
    assert (report["seen"], report["unchanged"], report["indexed"]) == (4, 3, 0)  # + the link
    assert (report["linked"], report["removed"], report["skipped_files"]) == (0, 0, [])
    assert report["problems"] == [
        {"path": f"{folder}/link\\xe9.jpg", "reason": "broken symlink to /nowhere/\\xe9.jpg"}
    ]

    errors = json.loads(run_cli("errors", "--json", data_dir=data_dir).stdout)
    assert [e["path"] for e in errors] == [f"{folder}/link\\xe9.jpg", f"{folder}/notes\\xff.jpg"]
    listed = run_cli("errors", data_dir=data_dir).stdout.splitlines()
    assert f"skipped {folder}/notes\\xff.jpg: not an image (content is text)" in listed

    found = json.loads(
        run_cli("search", "--image", undecodable, "--json", data_dir=data_dir).stdout
    )
    assert found["images"] == [stored_text(undecodable)]
    assert found["hits"][0]["path"] == f"{folder}/{SHOWN}"
    unit = json.loads(run_cli("get", found["hits"][0]["id"], data_dir=data_dir).stdout)
    assert unit["paths"] == [f"{folder}/{SHOWN}"]
    table = run_cli("search", "--image", undecodable, data_dir=data_dir).stdout
    assert SHOWN in table

    deleted = run_cli("delete", undecodable, data_dir=data_dir)
    assert "removed 1 path" in deleted.stdout
    nothing = run_cli("delete", undecodable, data_dir=data_dir, check=False)
    assert nothing.returncode == 1 and f"nothing indexed under {folder}/{SHOWN}" in nothing.stderr
    missing = run_cli("index", str(folder / "gone\udce9"), data_dir=data_dir, check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"no such file or directory: {folder}/gone\\xe9" in missing.stderr
    stats = json.loads(run_cli("stats", "--json", data_dir=data_dir).stdout)
    assert stats["units"] == 1 and stats["consistent"]


def test_cli_indexes_a_root_folder_whose_own_name_is_undecodable(
    heron_lite: Path, tmp_path: Path
) -> None:
    root = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(root)
    shutil.copyfile(_photos(1)[0], os.path.join(root, LATIN1_NAME))
    data_dir = tmp_path / "data"
    first = json.loads(
        run_cli("index", os.fsdecode(root), "--json", data_dir=data_dir).stdout.splitlines()[-1]
    )
    assert first["report"]["roots"] == [stored_text(os.fsdecode(root))]
    assert first["report"]["indexed"] == 1
    again = run_cli("index", os.fsdecode(root), data_dir=data_dir).stdout
    assert "0 embedded" in again and "1 unchanged" in again
    assert "removed 1 path" in run_cli("delete", os.fsdecode(root), data_dir=data_dir).stdout
