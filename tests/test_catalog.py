from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from heron.catalog import (
    INDEXED,
    PENDING,
    SKIPPED,
    Catalog,
    CatalogError,
    FileRecord,
    UnitRecord,
)
from tests.conftest import run_cli


def _rec(path: str, h: str | None = "h1", status: str = INDEXED, size: int = 10) -> FileRecord:
    return FileRecord(
        path=path,
        size=size,
        mtime_ns=1,
        status=status,
        content_hash=h,
        reason=None if status == INDEXED else "bad",
    )


def test_save_is_upsert_and_records_under_respects_folder_boundaries(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.sqlite")
    catalog.save([_rec("/a/x.jpg"), _rec("/a/sub/y.jpg", "h2"), _rec("/ab/z.jpg", "h3")])
    catalog.save([_rec("/a/x.jpg", "h9", size=20)])
    under = catalog.records_under([Path("/a")])
    assert set(under) == {"/a/x.jpg", "/a/sub/y.jpg"}  # not /ab/z.jpg
    assert under["/a/x.jpg"].content_hash == "h9" and under["/a/x.jpg"].size == 20
    assert set(catalog.records_under([Path("/ab/z.jpg")])) == {"/ab/z.jpg"}


def test_hash_lookups_ignore_skipped_files(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.sqlite")
    units = {"h1": [UnitRecord("h1", "image")], "h2": [UnitRecord("h2", "image")]}
    catalog.save([_rec("/a", "h1"), _rec("/b", "h1"), _rec("/c", "h2", SKIPPED)], units)
    assert catalog.indexed_hashes() == {"h1"}
    assert catalog.paths_for(["h1"]) == {"h1": ["/a", "/b"]}
    assert catalog.paths_for_units(["h1", "h2"]) == {"h1": ["/a", "/b"]}
    assert catalog.hashes_for(["/a", "/c"]) == {"/a": "h1"}
    assert catalog.count_units() == 1
    assert [r.path for r in catalog.skipped()] == ["/c"]


def test_a_source_replaces_its_units_in_one_save_and_they_resolve_to_its_paths(
    tmp_path: Path,
) -> None:
    catalog = Catalog(tmp_path / "c.sqlite")
    pages = [UnitRecord(f"p{n}", "page", f"page={n}") for n in (1, 2, 3)]
    catalog.save([_rec("/doc.pdf", "d1"), _rec("/copy.pdf", "d1")], {"d1": pages})
    assert catalog.unit_ids() == {"p1", "p2", "p3"}
    assert catalog.paths_for_units(["p2"]) == {"p2": ["/copy.pdf", "/doc.pdf"]}
    assert catalog.units_by_kind() == {"page": 3}
    catalog.save([], {"d1": pages[:1]})  # extracted again: its unit list is replaced, not added
    assert catalog.unit_ids() == {"p1"}
    assert catalog.sources_of(["p1", "nope"]) == {"d1"}
    catalog.forget_units(["d1"])
    assert catalog.unit_ids(["d1"]) == set()


def test_a_catalog_from_before_units_gets_one_unit_per_indexed_photo(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    catalog = Catalog(path)
    catalog.save([_rec("/a.jpg", "h1"), _rec("/b.jpg", "h2", PENDING), _rec("/c", None, SKIPPED)])
    catalog.close()
    with sqlite3.connect(path) as conn:  # as Heron before documents left it
        conn.execute("DELETE FROM units")
        conn.execute("DELETE FROM meta WHERE key = 'schema'")
    reopened = Catalog(path)
    assert reopened.unit_ids(["h1", "h2"]) == {"h1", "h2"}
    assert reopened.units_by_kind() == {"image": 1}  # h2 is pending: not counted until redone


def test_requeue_marks_rows_pending_and_remove_deletes(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.sqlite")
    catalog.save([_rec("/a", "h1"), _rec("/b", "h2")])
    assert catalog.requeue(["h1"]) == 1
    assert catalog.record("/a").status == PENDING  # type: ignore[union-attr]
    assert catalog.status_counts() == {INDEXED: 1, PENDING: 1}
    assert catalog.remove(["/a", "/missing"]) == 1
    assert catalog.record("/a") is None


def test_meta_and_runs_persist_across_reopen(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.sqlite")
    catalog.set_meta("model", "m@1")
    catalog.set_meta("model", "m@2")
    run = catalog.begin_run([Path("/pics")])
    catalog.finish_run(run, "completed", {"indexed": 3})
    catalog.close()
    reopened = Catalog(tmp_path / "c.sqlite")
    assert reopened.get_meta("model") == "m@2"
    last = reopened.runs(1)[0]
    assert (last.status, last.summary, last.roots) == ("completed", {"indexed": 3}, ["/pics"])


def test_analyze_lets_path_lookups_use_the_hash_index(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.sqlite")
    catalog.save([_rec(f"/p/{i}.jpg", f"h{i}") for i in range(2000)])
    question = (
        "EXPLAIN QUERY PLAN SELECT path FROM files "
        "WHERE content_hash IN ('h1', 'h2') AND status = 'indexed'"
    )

    def plan() -> str:
        with sqlite3.connect(catalog.path) as conn:
            return " ".join(str(row) for row in conn.execute(question))

    catalog.analyze()
    assert "ix_files_content_hash" in plan()
    assert catalog.paths_for(["h1", "h2"]) == {"h1": ["/p/1.jpg"], "h2": ["/p/2.jpg"]}


def test_a_file_that_is_not_sqlite_is_a_clear_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    path.write_text("not a database, just some text that is long enough to have a header")
    with pytest.raises(CatalogError, match=r"cannot be opened as a SQLite database"):
        Catalog(path)
    assert path.read_text().startswith("not a database")  # left as it was, for the user to see


def test_the_data_dir_must_be_a_folder(tmp_path: Path) -> None:
    from heron import Heron
    from heron.config import ConfigError

    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        Heron(tmp_path / "file")
    result = run_cli("stats", data_dir=tmp_path / "file", check=False)
    assert result.returncode == 1 and "is a file, not a folder" in result.stderr
