"""LanceStore: the embedded default backend, one LanceDB directory per store.

Writes are merge-inserts keyed on ``id`` (one commit each, so a batch is all-or-nothing and a
rerun replaces instead of duplicating). Searches use cosine distance with the filter applied
inside the vector search. Small tables are searched exactly; once a table reaches
``AnnSettings.threshold`` rows, :meth:`LanceStore.optimize` builds an IVF index and later keeps
it current (new rows are searched exactly until the next optimize folds them in).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS, Bitmap, BTree, IvfFlat, IvfPq, IvfRq, IvfSq
from lancedb.query import FullTextOperator, MatchQuery, PhraseQuery

from heron.store.ann_mirror import AnnMirror, MirrorSettings, saved_version
from heron.store.base import (
    UNIT_COLUMNS,
    KeywordMatch,
    StoreError,
    StoreHit,
    check_vector,
    dedupe_last,
    normalize_row,
)
from heron.store.filters import ColumnType, Field, Filter, FilterError
from heron.store.lance_sql import to_lance_sql

AnnKind = Literal["ivf_sq", "ivf_rq", "ivf_pq", "ivf_flat"]

# Lance file format for new tables. The "stable" default of lancedb 0.40 made fetching the 10
# hit rows of a 1M-row table take ~45 ms (column encodings without cheap random access);
# 2.1 takes ~5 ms.
_FILE_VERSION = "2.1"
_VECTOR_INDEX = "vector_idx"
_TRAINED_ROWS_KEY = "heron.ivf_trained_rows"
_ID_CHUNK = 4096
_SCAN_BATCH = 8192  # rows per batch a scan reads
# Built alongside the vector index. A prefilter on kind or model otherwise scans the column
# on every query (+30 ms at 1M rows); the bitmaps build in 0.2 s. id serves get/delete/merge.
_SCALAR_INDEXES: dict[str, type] = {
    "id": BTree,
    "model": Bitmap,
    "kind": Bitmap,
    "format": Bitmap,
    "source": BTree,
    "category": Bitmap,
}
_ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_NOT_NULL = frozenset({"id", "vector", "model"})
_HIT_COLUMNS = [name for name in UNIT_COLUMNS if name != "vector"]
_TEXT_INDEX = "terms_fts"
# Columns added after stores were first written; an older table gets them on open.
_ADDED_COLUMNS: dict[str, str] = {
    "terms": "''",
    "source": "''",
    "locator": "''",
    "pointer": "'{}'",
    "colours": "''",
    "scheme": "''",
    "brightness": "CAST(NULL AS DOUBLE)",
    "saturation": "CAST(NULL AS DOUBLE)",
    "category": "''",
    "category_score": "CAST(NULL AS DOUBLE)",
    "taken_at": "CAST(NULL AS TIMESTAMP)",
    "camera": "''",
    "latitude": "CAST(NULL AS DOUBLE)",
    "longitude": "CAST(NULL AS DOUBLE)",
    "tags": "''",
    "fingerprint": "''",
    "acl": "''",
}


@dataclass(frozen=True)
class AnnSettings:
    """When and how the ANN index is built, and how it is queried.

    The defaults were chosen with bench/bench_ann.py (384-d, clustered vectors, 2 cores).
    IVF_SQ built 1M rows in ~40 s and, re-ranking with the exact vectors, kept recall@10 at
    0.999. At 100k rows IVF_PQ took 95 s and IVF_HNSW_SQ 174 s to build (IVF_SQ: 5 s);
    IVF_RQ fell to recall 0.83 at 1M even with refine_factor 10.
    """

    # Rows before the first ANN index is built; below it search is exact. At 20k rows exact
    # search takes ~30 ms on 2 cores while the index builds in 0.3 s and keeps recall@10 at 1.0.
    threshold: int = 20_000
    kind: AnnKind = "ivf_sq"
    rows_per_partition: int = 4096  # IVF partitions = rows / this, at least 1
    nprobes: int = 20  # partitions always searched; more only when a filter leaves too few rows
    refine_factor: int = 5  # re-rank k * refine_factor candidates with the exact vectors
    retrain_growth: float = 4.0  # rebuild once rows exceed this multiple of the training size
    # Answer searches from an in-memory FAISS mirror of the table once it has `threshold`
    # rows (heron.store.ann_mirror): p99 2-6 ms at 1M instead of Lance's 15-32 ms, for about
    # the table's size in memory (vectors plus rows). False keeps every search in Lance.
    mirror: bool = True
    mirror_settings: MirrorSettings = field(default_factory=MirrorSettings)

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.rows_per_partition < 1 or self.nprobes < 1:
            raise StoreError("threshold, rows_per_partition and nprobes must be at least 1")
        if self.refine_factor < 1 or self.retrain_growth <= 1:
            raise StoreError("refine_factor must be at least 1 and retrain_growth above 1")


def unit_schema(dim: int) -> pa.Schema:
    """The Arrow schema of a unit table holding ``dim``-d vectors."""
    fields = []
    for name, ctype in UNIT_COLUMNS.items():
        dtype = pa.list_(pa.float32(), dim) if ctype == "vector" else _ARROW_TYPES[ctype]
        fields.append(pa.field(name, dtype, nullable=name not in _NOT_NULL))
    return pa.schema(fields)


class LanceStore:
    """A Store on an embedded LanceDB directory (see heron.store.base.Store)."""

    def __init__(
        self,
        path: Path | str,
        dim: int | None = None,
        table: str = "units",
        *,
        read_only: bool = False,
        ann: AnnSettings | None = None,
        keep_versions: timedelta = timedelta(minutes=10),
        read_consistency: timedelta | None = timedelta(0),
    ) -> None:
        """Open (or, unless ``read_only``, create) the store at ``path``.

        ``dim`` may be left out to open an existing table at its own dimension; a ``dim`` that
        disagrees with the table raises StoreError. ``keep_versions`` is how long superseded
        table versions survive ``optimize`` (a reader mid-query may still hold one).
        ``read_consistency`` is how stale a read may be with respect to other processes'
        writes; 0 checks on every read (cheap on a local disk), None never checks.
        """
        self.path = Path(path)
        self.table_name = table
        self.read_only = read_only
        self.ann = ann or AnnSettings()
        self.keep_versions = keep_versions
        if keep_versions <= timedelta(0):
            raise StoreError("keep_versions must be positive: concurrent readers need it")
        if dim is not None and (not isinstance(dim, int) or dim <= 0):
            raise StoreError(f"dim must be a positive integer, got {dim!r}")
        self._text_indexed = False
        self._db = self._connect(read_consistency)
        self._table = self._open_or_create(dim)
        self.dim = self._table_dim(dim)
        self._mirror: AnnMirror | None = None
        self._mirror_tried: tuple[int, int] | None = None  # (table, saved) versions last tried
        self._version_seen: tuple[int, int, int] | None = None  # (folder mtime, version, when)

    # ------------------------------------------------------------------ opening

    def _connect(self, read_consistency: timedelta | None) -> Any:
        if self.read_only and not (self.path / f"{self.table_name}.lance").is_dir():
            raise StoreError(f"no store table {self.table_name!r} at {self.path}")
        if not self.read_only:
            self.path.mkdir(parents=True, exist_ok=True)
        return lancedb.connect(
            self.path,
            read_consistency_interval=read_consistency,
            storage_options={"new_table_data_storage_version": _FILE_VERSION},
        )

    def _open_or_create(self, dim: int | None) -> Any:
        try:
            return self._migrated(self._db.open_table(self.table_name))
        except (ValueError, FileNotFoundError) as exc:
            if self.read_only:
                raise StoreError(f"cannot open store table at {self.path}: {exc}") from exc
        if dim is None:
            raise StoreError(f"no store at {self.path}; pass dim to create one")
        try:
            return self._db.create_table(self.table_name, schema=unit_schema(dim), exist_ok=True)
        except Exception as exc:
            raise StoreError(f"cannot create store table at {self.path}: {exc}") from exc

    def _migrated(self, table: Any) -> Any:
        """A table from before a column existed gets it, empty (its writer fills it in)."""
        added = {n: v for n, v in _ADDED_COLUMNS.items() if n not in table.schema.names}
        if added and not self.read_only:
            table.add_columns(added)
        return table

    def _table_dim(self, expected: int | None) -> int:
        schema = self._table.schema
        missing = [name for name in UNIT_COLUMNS if name not in schema.names]
        if missing:
            raise StoreError(f"store at {self.path} lacks column(s) {missing}; rebuild it")
        vtype = schema.field("vector").type
        if not pa.types.is_fixed_size_list(vtype):
            raise StoreError(f"store at {self.path} has an unexpected vector type {vtype}")
        if expected is not None and vtype.list_size != expected:
            raise StoreError(
                f"store at {self.path} holds {vtype.list_size}-d vectors but {expected}-d "
                "were asked for: it was built with another model; reindex into a new store"
            )
        return int(vtype.list_size)

    # ------------------------------------------------------------------ writes

    def upsert(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace rows by id in one commit; later duplicates in a batch win."""
        return self._write(rows, replace=True)

    def insert_new(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows whose ids the caller knows are absent, in one commit.

        An append skips merge-insert's join against every stored id (measured 2 ms vs 10 ms of
        CPU per 32-row batch at 2k rows, growing with the table), which matters while indexing
        shares the cores with inference. An id already present would be stored twice.
        """
        return self._write(rows, replace=False)

    def _write(self, rows: Iterable[Mapping[str, Any]], replace: bool) -> int:
        self._writable()
        now = datetime.now(UTC)
        batch = dedupe_last(normalize_row(row, self.dim, now) for row in rows)
        if not batch:
            return 0
        data = self._to_arrow(batch)
        before = self._table.version
        try:
            if replace:
                (
                    self._table.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(data)
                )
            else:
                self._table.add(data)
        except Exception as exc:
            verb = "upsert" if replace else "insert"
            raise StoreError(f"{verb} of {len(batch)} rows failed: {exc}") from exc
        self._mirror_write(before, lambda mirror, version: mirror.apply_upsert(data, version))
        return len(batch)

    def delete(self, ids: Iterable[str]) -> None:
        """Remove rows by id; ids not present are ignored."""
        self._writable()
        for chunk in _chunks(_check_ids(ids), _ID_CHUNK):
            before = self._table.version
            self._table.delete(self._id_predicate(chunk))
            self._mirror_write(before, lambda m, v, gone=chunk: m.apply_delete(gone, v))

    def _mirror_write(self, before: int, apply: Any) -> None:
        """Carry a write that took the table from version `before` into the mirror; if anyone
        else wrote in between, the mirror no longer knows the rows and is dropped."""
        mirror = self._mirror
        if mirror is None:
            return
        after = self._table.version
        if mirror.version == before and after == before + 1:
            apply(mirror, after)
        else:
            self._mirror = None

    def _to_arrow(self, batch: list[dict[str, Any]]) -> pa.Table:
        schema = unit_schema(self.dim)
        arrays = []
        for fld in schema:
            if fld.name == "vector":
                flat = np.stack([row["vector"] for row in batch]).reshape(-1)
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), self.dim))
            else:
                arrays.append(pa.array([row[fld.name] for row in batch], type=fld.type))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise StoreError(f"store at {self.path} was opened read-only")

    # ------------------------------------------------------------------ reads

    def get(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Rows for the ids that exist, in the order asked (vectors as float32 arrays)."""
        self._check_open()
        wanted = _check_ids(ids)
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(wanted)), _ID_CHUNK):
            tbl = self._table.search().where(self._id_predicate(chunk)).limit(None).to_arrow()
            for row in _rows(tbl, self.dim):
                found[row["id"]] = row
        return [found[i] for i in dict.fromkeys(wanted) if i in found]

    def search(self, vector: np.ndarray, k: int, filter: Filter | None = None) -> list[StoreHit]:
        """The k rows nearest ``vector`` by cosine similarity that match ``filter``."""
        self._check_open()
        query = check_vector(vector, self.dim, what="query vector")
        if _check_k(k) == 0:
            return []
        mirror = self._current_mirror()
        if mirror is not None:
            return self._mirror_search(mirror, query[None, :], k, filter)[0]
        where = self._sql(filter) if filter is not None else None
        answers = [self._search(query, k, where, exhaustive=False)]
        self._probe_all_where_short([query], answers, k, where)
        return answers[0]

    def search_many(
        self, vectors: np.ndarray, k: int, filter: Filter | None = None
    ) -> list[list[StoreHit]]:
        """`search` for each row of ``vectors``, in one Lance query (measured 0.9 ms per query
        instead of 16 ms one by one at 7k rows): what evaluation over thousands of queries needs."""
        self._check_open()
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim != 2:
            raise StoreError(f"search_many takes [N, {self.dim}] vectors, got {queries.shape}")
        for query in queries:
            check_vector(query, self.dim, what="query vector")
        if _check_k(k) == 0 or len(queries) == 0:
            return [[] for _ in queries]
        mirror = self._current_mirror()
        if mirror is not None:
            return self._mirror_search(mirror, queries, k, filter)
        where = self._sql(filter) if filter is not None else None
        table = self._run(self._builder(list(queries), k, where, exhaustive=False))
        answers: list[list[StoreHit]] = [[] for _ in queries]
        for row in table.to_pylist():
            # Lance leaves the column out when it was given a single query.
            answers[row.pop("query_index", 0)].append(_hit(row))
        for hits in answers:
            hits.sort(key=lambda hit: -hit.score)
        self._probe_all_where_short(list(queries), answers, k, where)
        return answers

    def _mirror_search(
        self, mirror: AnnMirror, queries: np.ndarray, k: int, flt: Filter | None
    ) -> list[list[StoreHit]]:
        try:
            answers = mirror.search(queries, k, flt)
        except FilterError as exc:
            raise StoreError(str(exc)) from exc
        return [[StoreHit(row["id"], score, row) for score, row in hits] for hits in answers]

    def _current_mirror(self) -> AnnMirror | None:
        """The mirror, if it reflects the table as it is now (loading a saved one that does)."""
        if not self.ann.mirror:
            return None
        version = self._version()
        mirror = self._mirror
        if mirror is not None and mirror.version == version:
            return mirror
        saved = saved_version(self._mirror_folder)
        tried = (version, saved[0] if saved else -1)
        if saved is None or saved[0] != version or tried == self._mirror_tried:
            return None
        self._mirror_tried = tried
        self._mirror = AnnMirror.load(
            self._mirror_folder, version, UNIT_COLUMNS, self.ann.mirror_settings
        )
        return self._mirror

    def _version(self) -> int:
        """The table's latest version. Asking Lance costs ~1.5 ms (more than a mirror search),
        so the answer is reused while the folder of version manifests is unchanged: every
        commit, by any process, adds a manifest there. A folder touched within the last
        50 ms is always re-asked, since its timestamp may not tell two commits apart."""
        versions = self.path / f"{self.table_name}.lance" / "_versions"
        try:
            stamp = versions.stat().st_mtime_ns
        except OSError:
            return int(self._table.version)
        cached = self._version_seen
        now = time.time_ns()
        if cached is not None and cached[0] == stamp and stamp < cached[2] - 50_000_000:
            return cached[1]
        version = int(self._table.version)
        self._version_seen = (stamp, version, now)
        return version

    @property
    def _mirror_folder(self) -> Path:
        return self.path / f"{self.table_name}.ann"

    def _probe_all_where_short(
        self, queries: list[np.ndarray], answers: list[list[StoreHit]], k: int, where: str | None
    ) -> None:
        """Where a filter left the probed partitions with fewer than k matching rows, search
        again probing every partition (only an ANN index probes; exact search saw every row)."""
        short = [i for i, hits in enumerate(answers) if len(hits) < k]
        if where is None or not short or not self._vector_index_exists():
            return
        for i in short:
            answers[i] = self._search(queries[i], k, where, exhaustive=True)

    def _search(
        self, query: np.ndarray, k: int, where: str | None, exhaustive: bool
    ) -> list[StoreHit]:
        rows = self._run(self._builder(query, k, where, exhaustive)).to_pylist()
        return [_hit(row) for row in rows]

    def _builder(
        self, query: np.ndarray | list[np.ndarray], k: int, where: str | None, exhaustive: bool
    ) -> Any:
        # nprobes and refine_factor only apply once a vector index exists (possibly built
        # by another process); on a table without one the search is exact.
        builder = (
            self._table.search(query, vector_column_name="vector")
            .distance_type("cosine")
            .select([*_HIT_COLUMNS, "_distance"])
            .limit(k)
            .minimum_nprobes(self.ann.nprobes)
            # 0 = unbounded. Lance then searches every partition even when the first
            # nprobes already hold k rows, so it is kept for the filtered fallback.
            .maximum_nprobes(0 if exhaustive else self.ann.nprobes)
            .refine_factor(self.ann.refine_factor)
        )
        if where is not None:
            builder = builder.where(where, prefilter=True)
        return builder

    def keyword_search(
        self, phrase: str, k: int, filter: Filter | None = None, match: KeywordMatch = "phrase"
    ) -> list[StoreHit]:
        """Rows whose terms hold `phrase` in order, or with match="all" hold every one of its
        terms in any order (Lance's BM25 full-text search), best first."""
        self._check_open()
        if _check_k(k) == 0 or not phrase.split():
            return []
        self._ensure_text_index()
        if match == "phrase":
            query: Any = PhraseQuery(phrase, "terms")
        else:
            query = MatchQuery(phrase, "terms", operator=FullTextOperator.AND)
        builder = (
            self._table.search(query, query_type="fts").select([*_HIT_COLUMNS, "_score"]).limit(k)
        )
        if filter is not None:
            builder = builder.where(self._sql(filter), prefilter=True)
        rows = self._run(builder).to_pylist()
        return [StoreHit(id=row["id"], score=float(row.pop("_score")), row=row) for row in rows]

    def scan(
        self, filter: Filter | None = None, columns: Iterable[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Rows matching ``filter`` with ``columns`` (default: all but the vector), streamed."""
        self._check_open()
        wanted = list(columns) if columns is not None else list(_HIT_COLUMNS)
        unknown = [name for name in wanted if name not in UNIT_COLUMNS]
        if unknown:
            raise StoreError(f"unknown column(s) {unknown}; columns are {list(UNIT_COLUMNS)}")
        builder = self._table.search().select(wanted).limit(None)
        if filter is not None:
            builder = builder.where(self._sql(filter))
        try:
            batches = builder.to_batches(_SCAN_BATCH)
        except Exception as exc:
            raise StoreError(f"scan failed: {exc}") from exc
        for batch in batches:
            yield from _rows(pa.Table.from_batches([batch]), self.dim)

    def rows_without_terms(self) -> list[dict[str, Any]]:
        """Rows with text but no terms yet (written before the terms column existed)."""
        self._check_open()
        builder = self._table.search().where("terms = '' AND text != ''").limit(None)
        return _rows(self._run(builder), self.dim)

    def count(self, filter: Filter | None = None) -> int:
        self._check_open()
        where = self._sql(filter) if filter is not None else None
        return int(self._table.count_rows(where))

    def ids(self) -> set[str]:
        self._check_open()
        return set(self._column("id").to_pylist())

    def models(self) -> set[str]:
        self._check_open()
        return {m for m in pc.unique(self._column("model")).to_pylist() if m is not None}

    def _column(self, name: str) -> pa.ChunkedArray:
        return self._table.search().select([name]).limit(None).to_arrow()[name]

    def _run(self, builder: Any) -> pa.Table:
        try:
            return builder.to_arrow()
        except Exception as exc:
            raise StoreError(f"search failed: {exc}") from exc

    def _sql(self, flt: Filter) -> str:
        try:
            return to_lance_sql(flt, UNIT_COLUMNS)
        except FilterError as exc:
            raise StoreError(str(exc)) from exc

    def _id_predicate(self, ids: list[str]) -> str:
        return to_lance_sql(Field("id").isin(ids), UNIT_COLUMNS)

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> None:
        """Compact files, drop versions older than ``keep_versions``, and build or refresh
        the ANN index once the table has ``ann.threshold`` rows."""
        self._writable()
        mirror = self._current_mirror()
        self._ensure_text_index()
        self._table.optimize(cleanup_older_than=self.keep_versions)
        rows = self._table.count_rows()
        if rows < self.ann.threshold:
            return
        trained = self._trained_rows()
        if not self._vector_index_exists() or (
            trained and rows > trained * self.ann.retrain_growth
        ):
            self._build_vector_index(rows)
        self._ensure_scalar_indexes()
        if self.ann.mirror:
            self._refresh_mirror(mirror, rows)

    def _refresh_mirror(self, mirror: AnnMirror | None, rows: int) -> None:
        """Re-stamp the mirror after optimize (rows unchanged), or rebuild it from the table
        when it was stale, missing, or its IVF lists were trained on far fewer rows; then save
        it for the next process to load."""
        version = self._table.version
        if mirror is not None and mirror.rows == rows:
            stale_lists = rows > mirror.nlist**2 * self.ann.retrain_growth
            if not stale_lists:
                mirror.stamp(version)
            else:
                mirror = None
        else:
            mirror = None
        if mirror is None:
            try:
                mirror = AnnMirror.build(
                    self._table.to_arrow(), version, UNIT_COLUMNS, self.ann.mirror_settings
                )
            except ImportError:  # faiss-cpu missing: every search stays in Lance
                return
        self._mirror = mirror
        mirror.save(self._mirror_folder)

    def index_info(self) -> dict[str, Any] | None:
        """Statistics of the vector index, or None while search is exact."""
        self._check_open()
        if not self._vector_index_exists():
            return None
        stats = self._table.index_stats(_VECTOR_INDEX)
        mirror = self._current_mirror()
        return {
            "kind": stats.index_type,
            "indexed_rows": stats.num_indexed_rows,
            "unindexed_rows": stats.num_unindexed_rows,
            "trained_rows": self._trained_rows(),
            "mirror": None
            if mirror is None
            else {
                "rows": mirror.rows,
                "lists": mirror.nlist,
                "memory_bytes": mirror.memory_bytes(),
                "version": mirror.version,
            },
        }

    def _build_vector_index(self, rows: int) -> None:
        partitions = max(1, round(rows / self.ann.rows_per_partition))
        config = _ann_config(self.ann.kind, partitions, self.dim)
        try:
            self._table.create_index("vector", config=config, replace=True, name=_VECTOR_INDEX)
        except Exception as exc:
            raise StoreError(f"building the {self.ann.kind} index failed: {exc}") from exc
        self._table.update_field_metadata(
            {"path": "vector", "metadata": {_TRAINED_ROWS_KEY: str(rows)}}
        )

    def _ensure_scalar_indexes(self) -> None:
        names = {idx.name for idx in self._table.list_indices()}
        for column, config in _SCALAR_INDEXES.items():
            if f"{column}_idx" not in names:
                self._table.create_index(column, config=config(), name=f"{column}_idx")

    def _ensure_text_index(self) -> None:
        """The full-text index over `terms`, created once; `optimize` folds new rows into it and
        rows written since are searched without it meanwhile."""
        if self._text_indexed:  # once there, it stays: no index listing on every keyword query
            return
        if any(idx.name == _TEXT_INDEX for idx in self._table.list_indices()):
            self._text_indexed = True
            return
        if self.read_only:
            return
        config = FTS(
            with_position=True,  # phrase queries
            base_tokenizer="whitespace",  # terms are cut already, in every script alike
            lower_case=False,
            stem=False,
            remove_stop_words=False,
            ascii_folding=False,
        )
        try:
            self._table.create_index("terms", config=config, name=_TEXT_INDEX)
        except Exception as exc:
            raise StoreError(f"building the full-text index failed: {exc}") from exc
        self._text_indexed = True

    def _trained_rows(self) -> int:
        meta = self._table.schema.field("vector").metadata or {}
        raw = meta.get(_TRAINED_ROWS_KEY.encode())
        return int(raw) if raw else 0

    def _vector_index_exists(self) -> bool:
        return any(idx.name == _VECTOR_INDEX for idx in self._table.list_indices())

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release the table; the store cannot be used afterwards. Safe to call twice."""
        self._table = None
        self._db = None
        self._mirror = None

    def _check_open(self) -> None:
        if self._table is None:
            raise StoreError(f"store at {self.path} is closed")

    def __enter__(self) -> LanceStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"LanceStore({str(self.path)!r}, dim={self.dim}, table={self.table_name!r}, {mode})"


def _ann_config(kind: AnnKind, partitions: int, dim: int) -> Any:
    if kind == "ivf_sq":
        return IvfSq(distance_type="cosine", num_partitions=partitions)
    if kind == "ivf_rq":
        return IvfRq(distance_type="cosine", num_partitions=partitions)
    if kind == "ivf_flat":
        return IvfFlat(distance_type="cosine", num_partitions=partitions)
    if kind == "ivf_pq":
        sub = next(s for s in (dim // 8, dim // 4, dim // 2, 1) if s >= 1 and dim % s == 0)
        return IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub)
    raise StoreError(f"unknown ANN index kind {kind!r}")


def _check_k(k: object) -> int:
    if not isinstance(k, int) or k < 0:
        raise StoreError(f"k must be a non-negative integer, got {k!r}")
    return k


def _hit(row: dict[str, Any]) -> StoreHit:
    return StoreHit(id=row["id"], score=1.0 - float(row.pop("_distance")), row=row)


def _rows(tbl: pa.Table, dim: int) -> list[dict[str, Any]]:
    vectors = None
    if "vector" in tbl.column_names:
        flat = pc.list_flatten(tbl["vector"].combine_chunks()).to_numpy(zero_copy_only=False)
        vectors = flat.astype(np.float32, copy=False).reshape(-1, dim)
        tbl = tbl.drop_columns(["vector"])
    rows = tbl.to_pylist()
    if vectors is None:
        return rows
    order = [name for name in UNIT_COLUMNS if name == "vector" or name in tbl.column_names]
    return [
        {name: vec if name == "vector" else row[name] for name in order}
        for row, vec in zip(rows, vectors, strict=True)
    ]


def _check_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str):
        raise StoreError("pass a list of ids, not a single string")
    out = list(ids)
    bad = [i for i in out if not isinstance(i, str)]
    if bad:
        raise StoreError(f"ids must be strings, got {bad[:3]!r}")
    return out


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = ["AnnSettings", "LanceStore", "unit_schema"]
