"""The indexing run: crawl, plan against the catalog, decode in parallel, embed in batches, commit.

Decoding (thread pool; Pillow and the hash release the GIL) overlaps inference (ONNX Runtime
releases it too) through a bounded look-ahead window, so neither side waits for the other and
memory stays flat however large the folder.

Paths reach the catalog, the store and the report as `heron.util.paths.stored_text` (a name that
is not UTF-8 keeps its undecodable bytes as `\\xNN` escapes); files are read through the crawled
path, and a stored path is looked at on disk through `on_disk`.

Commit order per batch — thumbnails, store upsert (atomic, keyed by content hash), catalog rows
(one transaction) — makes a kill at any moment safe: `reconcile` at the next start removes store
rows the catalog never learnt of and re-queues catalog rows whose vectors are missing.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from heron.catalog import INDEXED, SKIPPED, Catalog, FileRecord
from heron.extract.images import (
    IMAGE_SUFFIXES,
    DecodedImage,
    SkipFile,
    decode_image,
    decode_image_bytes,
    make_thumbnail,
)
from heron.ingest.crawl import CrawlEntry, CrawlProblem, hidden_below, walk
from heron.models.encoder import Encoder
from heron.models.preprocess import model_rgb, normalize
from heron.store.base import Store
from heron.store.blobs import BlobStore
from heron.understand.hashes import content_hash, content_hash_bytes
from heron.understand.ocr import OcrEngine, OcrResult
from heron.understand.terms import index_text
from heron.util.paths import existing, on_disk, stored_text

COMMIT_UNITS = 128  # units per store commit: a few inference batches
COMMIT_RECORDS = 512  # catalog records per commit, for runs that mostly link or skip
READ_WHOLE_FILE_BELOW = 64 * 1024 * 1024  # smaller files are read once for hash and decode
BROWSER_FORMATS = frozenset({"jpeg", "png", "webp", "gif"})
# Crawl problems that concern one file (kept in the catalog as skipped); loops and duplicate
# folder links concern folders and are only reported.
FILE_PROBLEMS = frozenset({"broken_link", "unsupported", "unreadable"})
# Files Heron recognises but cannot index yet: each gets a skipped-with-reason outcome, so a
# user learns why a document or video in a photo folder was not found. `.jxl` goes through the
# image decoder, which names the format it cannot read.
NOT_YET_INDEXED = frozenset(
    {".pdf", ".pptx", ".docx", ".md", ".txt", ".mp4", ".webm", ".mov", ".mkv", ".avi"}
)
CRAWLED_SUFFIXES = IMAGE_SUFFIXES | NOT_YET_INDEXED | {".jxl"}


@dataclass
class IndexProgress:
    """A snapshot sent to the progress callback after each commit."""

    total: int
    done: int
    indexed: int
    linked: int
    skipped: int
    elapsed: float


@dataclass
class IndexReport:
    roots: list[str]
    seen: int = 0
    unchanged: int = 0
    indexed: int = 0  # newly embedded units
    linked: int = 0  # paths whose content was already stored (duplicates, touched files)
    skipped: int = 0
    removed: int = 0  # paths gone from disk, pruned
    problems: list[dict[str, str]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    reconciled: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["images_per_second"] = round(self.images_per_second, 2)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class _Prepared:
    entry: CrawlEntry
    content_hash: str | None = None
    rgb: np.ndarray | None = None  # uint8 HWC at the model's input size
    thumbnail: bytes | None = None
    width: int = 0
    height: int = 0
    format: str = ""
    taken_at: str | None = None
    reason: str | None = None
    ocr: OcrResult | None = None
    ocr_error: str | None = None


ProgressCallback = Callable[[IndexProgress], None]


class Indexer:
    def __init__(
        self,
        *,
        catalog: Catalog,
        store: Store,
        encoder: Encoder,
        thumbnails: BlobStore,
        batch_size: int = 32,
        decode_workers: int = 1,
        inference_workers: int = 1,
        include_hidden: bool = False,
        thumbnail_size: int = 256,
        max_image_pixels: int = 80_000_000,
        ocr: OcrEngine | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.encoder = encoder
        self.thumbnails = thumbnails
        self.batch_size = batch_size
        self.decode_workers = max(1, decode_workers)
        self.inference_workers = max(1, inference_workers)
        self.include_hidden = include_hidden
        self.thumbnail_size = thumbnail_size
        self.max_image_pixels = max_image_pixels
        self.ocr = ocr

    def run(
        self, roots: Sequence[Path], on_progress: ProgressCallback | None = None
    ) -> IndexReport:
        started = time.perf_counter()
        roots = existing(roots)
        report = IndexReport(roots=[stored_text(r) for r in roots])
        run_id = self.catalog.begin_run(roots)
        status = "interrupted"
        try:
            report.reconciled = reconcile(self.catalog, self.store, self.thumbnails)
            backfill_terms(self.store)
            todo = self._plan(roots, report)
            self._process(todo, report, on_progress, started)
            self.store.optimize()
            self.catalog.analyze()
            status = "completed"
        finally:
            report.seconds = time.perf_counter() - started
            self.catalog.finish_run(run_id, status, _summary(report))
        return report

    def _plan(self, roots: Sequence[Path], report: IndexReport) -> list[CrawlEntry]:
        known = self.catalog.records_under(roots)
        seen: set[str] = set()
        todo: list[CrawlEntry] = []
        problems: list[FileRecord] = []
        for item in walk(roots, include_hidden=self.include_hidden, suffixes=CRAWLED_SUFFIXES):
            if isinstance(item, CrawlProblem):
                key = stored_text(item.path)
                report.problems.append({"path": key, "reason": stored_text(item.reason)})
                if item.kind in FILE_PROBLEMS:
                    seen.add(key)
                    problems.append(_problem_record(item))
                continue
            key = stored_text(item.path)
            if key in seen:  # b"caf\xe9.jpg" beside a file named r"caf\xe9.jpg" (rare)
                reason = "another file's name reads the same once undecodable bytes are escaped"
                report.problems.append({"path": key, "reason": reason})
                continue
            seen.add(key)
            record = known.get(key)
            if record and _unchanged(record, item):
                report.unchanged += 1
            else:
                todo.append(item)
        report.seen = len(seen)
        self.catalog.save(problems)
        gone = [path for path in known if path not in seen and not self._kept_unwalked(path, roots)]
        if gone:
            hashes = {known[p].content_hash for p in gone if known[p].content_hash}
            report.removed = self.catalog.remove(gone)
            drop_unreferenced(self.catalog, self.store, self.thumbnails, hashes)
        return todo

    def _kept_unwalked(self, path: str, roots: Sequence[Path]) -> bool:
        """A hidden file an earlier `--include-hidden` run indexed stays while it exists: a run
        that skips hidden files did not look at it, so it cannot have found it gone."""
        if self.include_hidden:
            return False
        on_disk_path = on_disk(path)
        return hidden_below(Path(on_disk_path), roots) and os.path.lexists(on_disk_path)

    def _process(
        self,
        todo: list[CrawlEntry],
        report: IndexReport,
        on_progress: ProgressCallback | None,
        started: float,
    ) -> None:
        """Decode (pool) → embed (inference pool) → commit (one writer thread), all overlapped.

        Inference runs as parallel single-threaded calls rather than one multi-threaded call:
        on a few shared cores, intra-op threads stall at every layer's barrier whenever a decode
        thread holds a core, while independent calls just take turns. Several inference batches
        are committed together: each store commit has a fixed cost (measured 8 ms of CPU for 32
        rows, 12 ms for 128). The single writer keeps commits in submission order, so a
        duplicate linked in a later batch is never committed before the unit it points at.
        """
        stored = self.store.ids()
        previous = self.catalog.hashes_for(stored_text(entry.path) for entry in todo)
        batch = _Batch()
        group = _CommitGroup()
        done = 0
        embedding: deque[Future[list[dict[str, object]]]] = deque()
        committing: deque[Future[None]] = deque()
        tally = _Tally(report, len(todo), on_progress, started)

        def embed(inference: ThreadPoolExecutor) -> None:
            nonlocal batch
            while len(embedding) > self.inference_workers:  # bound the queued pixels
                embedding.popleft().result()
            rows = inference.submit(self._rows, batch.units)
            embedding.append(rows)
            group.add(rows, batch)
            stored.update(batch.unit_ids)
            batch = _Batch()

        def commit(writer: ThreadPoolExecutor) -> None:
            nonlocal group
            group.done = done
            while len(committing) > 1:
                committing.popleft().result()
            committing.append(writer.submit(self._commit, group, tally))
            group = _CommitGroup()

        with (
            ThreadPoolExecutor(self.decode_workers, thread_name_prefix="heron-decode") as pool,
            ThreadPoolExecutor(self.inference_workers, thread_name_prefix="heron-embed") as infer,
            ThreadPoolExecutor(1, thread_name_prefix="heron-commit") as writer,
        ):
            window = self.batch_size * 3
            for prepared in _bounded_map(pool, lambda e: self._prepare(e, stored), todo, window):
                done += 1
                self._route(prepared, batch, stored)
                if len(batch.units) >= self.batch_size or len(batch.records) >= COMMIT_RECORDS:
                    embed(infer)
                if group.units >= COMMIT_UNITS or len(group.records) >= COMMIT_RECORDS:
                    commit(writer)
            embed(infer)
            commit(writer)
            while committing:
                committing.popleft().result()
        replaced = {h for p, h in previous.items() if h} - self.catalog.indexed_hashes()
        drop_unreferenced(self.catalog, self.store, self.thumbnails, replaced)

    def _prepare(self, entry: CrawlEntry, stored: set[str]) -> _Prepared:
        prepared = _Prepared(entry=entry)
        suffix = entry.path.suffix.lower()
        if suffix in NOT_YET_INDEXED:
            prepared.reason = f"{suffix} files are not indexed yet (this version indexes images)"
            return prepared
        try:
            decoded = self._decode_unless_stored(prepared, stored)
            if decoded is None:
                return prepared  # same bytes already embedded: link this path, decode nothing
            prepared.rgb = model_rgb(decoded.image, self.encoder.image_spec)
            if _needs_thumbnail(decoded, self.thumbnail_size):
                prepared.thumbnail = make_thumbnail(decoded.image, self.thumbnail_size)
            prepared.width, prepared.height = decoded.width, decoded.height
            prepared.format = decoded.format
            if decoded.exif_datetime is not None:
                prepared.taken_at = decoded.exif_datetime.isoformat()
            self._read_text(prepared, decoded)
        except SkipFile as exc:
            prepared.reason = str(exc)
        except OSError as exc:
            prepared.reason = f"cannot read file: {exc.strerror or exc}"
        except Exception as exc:  # a decoder bug must cost one file, never the run
            prepared.reason = f"unexpected error while decoding: {type(exc).__name__}: {exc}"
        return prepared

    def _read_text(self, prepared: _Prepared, decoded: DecodedImage) -> None:
        """OCR, when this run reads text in pictures; a failure costs the text, not the file."""
        if self.ocr is None:
            return
        try:
            prepared.ocr = self.ocr.read(decoded.image)
        except Exception as exc:  # an OCR bug on one picture must not skip it
            prepared.ocr_error = f"{type(exc).__name__}: {exc}"

    def _decode_unless_stored(self, prepared: _Prepared, stored: set[str]) -> DecodedImage | None:
        """Hash the file and, unless its content is stored already, decode it (one read)."""
        path = prepared.entry.path
        spec = self.encoder.image_spec
        # Draft decoding reads a JPEG at a fraction of its size, no smaller than asked for:
        # the model's input, or with OCR the side the text detector works at.
        target = max(spec.size, self.ocr.detect_side) if self.ocr is not None else spec.size
        if prepared.entry.size > READ_WHOLE_FILE_BELOW:
            prepared.content_hash = content_hash(path)
            if prepared.content_hash in stored:
                return None
            return decode_image(path, target_size=target, max_pixels=self.max_image_pixels)
        data = path.read_bytes()
        prepared.content_hash = content_hash_bytes(data)
        if prepared.content_hash in stored:
            return None
        return decode_image_bytes(data, target_size=target, max_pixels=self.max_image_pixels)

    def _route(self, prepared: _Prepared, batch: _Batch, stored: set[str]) -> None:
        entry = prepared.entry
        if prepared.reason is not None:
            reason = stored_text(prepared.reason)
            batch.skipped_files.append({"path": stored_text(entry.path), "reason": reason})
            batch.records.append(_file_record(entry, SKIPPED, None, reason))
            return
        assert prepared.content_hash is not None
        record = _file_record(entry, INDEXED, prepared.content_hash, None)
        batch.records.append(record)
        already = prepared.content_hash in stored or prepared.content_hash in batch.unit_ids
        if already or prepared.rgb is None:
            batch.linked += 1
            return
        batch.units.append(prepared)
        batch.unit_ids.add(prepared.content_hash)

    def _commit(self, group: _CommitGroup, tally: _Tally) -> None:
        for unit in group.thumbnailed:
            assert unit.content_hash is not None and unit.thumbnail is not None
            self.thumbnails.write(unit.content_hash, unit.thumbnail)
        rows = [row for batch_rows in group.rows for row in batch_rows.result()]
        if rows:
            # Every id here is new: reconcile() left the store holding exactly the catalog's
            # units, the index lock excludes other writers, and `stored` filtered the rest.
            self.store.insert_new(rows)
        if group.records:
            self.catalog.save(group.records)
        tally.committed(group)

    def _rows(self, units: list[_Prepared]) -> list[dict[str, object]]:
        if not units:
            return []
        rgb = np.stack([u.rgb for u in units])
        for unit in units:
            unit.rgb = None  # the batch holds the pixels now; free them as soon as it is done
        vectors = self.encoder.embed_pixels(normalize(rgb, self.encoder.image_spec))
        del rgb
        now = datetime.now(UTC)
        rows = []
        for unit, vector in zip(units, vectors, strict=True):
            assert unit.content_hash is not None
            thumbnail = ""
            if unit.thumbnail is not None:
                thumbnail = self.thumbnails.relative_path(unit.content_hash)
            extra: dict[str, object] = {"taken_at": unit.taken_at} if unit.taken_at else {}
            text = searchable_name(unit.entry.path)
            if unit.ocr is not None and unit.ocr.lines:
                text = f"{text}\n{unit.ocr.text}"
                extra["ocr"] = [line.to_dict() for line in unit.ocr.lines]
            if unit.ocr_error is not None:
                extra["ocr_error"] = unit.ocr_error
            rows.append(
                {
                    "id": unit.content_hash,
                    "vector": vector,
                    "model": self.encoder.stamp,
                    "kind": "image",
                    "path": stored_text(unit.entry.path),
                    "text": text,
                    "terms": index_text(text),
                    "width": unit.width,
                    "height": unit.height,
                    "bytes": unit.entry.size,
                    "format": unit.format,
                    "modified_at": datetime.fromtimestamp(unit.entry.mtime_ns / 1e9, UTC),
                    "indexed_at": now,
                    "thumbnail": thumbnail,
                    "extra": json.dumps(extra),
                }
            )
        return rows


@dataclass
class _CommitGroup:
    """Inference batches committed together: their rows, thumbnails and catalog records."""

    rows: list[Future[list[dict[str, object]]]] = field(default_factory=list)
    thumbnailed: list[_Prepared] = field(default_factory=list)
    records: list[FileRecord] = field(default_factory=list)
    units: int = 0
    linked: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    done: int = 0  # files routed when the group was closed

    def add(self, rows: Future[list[dict[str, object]]], batch: _Batch) -> None:
        self.rows.append(rows)
        self.thumbnailed.extend(u for u in batch.units if u.thumbnail is not None)
        self.records.extend(batch.records)
        self.units += len(batch.units)
        self.linked += batch.linked
        self.skipped_files.extend(batch.skipped_files)


@dataclass
class _Batch:
    units: list[_Prepared] = field(default_factory=list)
    unit_ids: set[str] = field(default_factory=set)
    records: list[FileRecord] = field(default_factory=list)
    linked: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Tally:
    """Counts each committed group into the report, then tells the progress callback.

    Counting at commit rather than when a file is routed makes an interrupted run's summary
    say what was kept.
    """

    report: IndexReport
    total: int
    on_progress: ProgressCallback | None
    started: float

    def committed(self, group: _CommitGroup) -> None:
        report = self.report
        report.indexed += group.units
        report.linked += group.linked
        report.skipped += len(group.skipped_files)
        report.skipped_files.extend(group.skipped_files)
        if self.on_progress is not None:
            self.on_progress(
                IndexProgress(
                    total=self.total,
                    done=group.done,
                    indexed=report.indexed,
                    linked=report.linked,
                    skipped=report.skipped,
                    elapsed=time.perf_counter() - self.started,
                )
            )


def reconcile(catalog: Catalog, store: Store, thumbnails: BlobStore) -> dict[str, int]:
    """Make the store and the catalog agree after a crash between their two commits."""
    stored = store.ids()
    referenced = catalog.indexed_hashes()
    orphans = stored - referenced
    missing = referenced - stored
    if orphans:
        store.delete(sorted(orphans))
        thumbnails.delete(orphans)
    requeued = catalog.requeue(missing) if missing else 0
    return {"orphan_units_removed": len(orphans), "files_requeued": requeued}


def drop_unreferenced(
    catalog: Catalog, store: Store, thumbnails: BlobStore, candidates: set[str]
) -> int:
    """Delete the stored units among `candidates` that no catalog path points at any more."""
    if not candidates:
        return 0
    still_used = catalog.paths_for(candidates).keys()
    drop = sorted(candidates - set(still_used))
    if drop:
        store.delete(drop)
        thumbnails.delete(drop)
    return len(drop)


def backfill_terms(store: Store) -> int:
    """Give rows stored before keyword search existed their terms; returns how many."""
    rows = store.rows_without_terms()
    for row in rows:
        row["terms"] = index_text(row["text"])
    return store.upsert(rows) if rows else 0


def searchable_name(path: Path) -> str:
    """File name words, so `IMG_beach-sunset.jpg` can be found by 'beach sunset'."""
    stem = stored_text(path.stem)
    for sep in "_-.":
        stem = stem.replace(sep, " ")
    return " ".join(stem.split())


def _needs_thumbnail(decoded: DecodedImage, max_side: int) -> bool:
    """An original already thumbnail-sized, in a format browsers show, is its own thumbnail."""
    small = max(decoded.width, decoded.height) <= max_side
    return not (small and decoded.format in BROWSER_FORMATS)


def _unchanged(record: FileRecord, entry: CrawlEntry) -> bool:
    return (
        record.status in (INDEXED, SKIPPED)
        and record.size == entry.size
        and record.mtime_ns == entry.mtime_ns
    )


def _file_record(
    entry: CrawlEntry, status: str, content_hash: str | None, reason: str | None
) -> FileRecord:
    return FileRecord(
        path=stored_text(entry.path),
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        status=status,
        content_hash=content_hash,
        reason=reason,
    )


def _problem_record(problem: CrawlProblem) -> FileRecord:
    return FileRecord(
        path=stored_text(problem.path),
        size=0,
        mtime_ns=0,
        status=SKIPPED,
        reason=stored_text(problem.reason),
    )


def _bounded_map(
    pool: ThreadPoolExecutor,
    fn: Callable[[CrawlEntry], _Prepared],
    items: list[CrawlEntry],
    window: int,
) -> Iterator[_Prepared]:
    """Like pool.map, in order, but never more than `window` items in flight."""
    pending: deque[Future[_Prepared]] = deque()
    iterator = iter(items)
    for item in iterator:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        next_item = next(iterator, None)
        if next_item is not None:
            pending.append(pool.submit(fn, next_item))
        yield result


def _summary(report: IndexReport) -> dict[str, int]:
    return {
        "seen": report.seen,
        "unchanged": report.unchanged,
        "indexed": report.indexed,
        "linked": report.linked,
        "skipped": report.skipped,
        "removed": report.removed,
    }
