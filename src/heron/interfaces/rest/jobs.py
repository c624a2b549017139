"""Ingest jobs: uploaded files indexed by one background thread, one job at a time.

`Heron.index` holds the data dir's index lock for a run, so jobs queue behind each other (a
run of the CLI on the same data dir makes a job fail with `locked`); searches never wait for
them. Jobs live in memory: a restarted server forgets them (the files they indexed stay
indexed, and their folders stay under `<data dir>/uploads/`).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heron.errors import USER_ERRORS
from heron.ingest.pipeline import IndexProgress, IndexReport
from heron.interfaces.rest.errors import classify
from heron.interfaces.rest.uploads import SavedFile
from heron.library import Heron
from heron.util.errors import HeronError
from heron.util.paths import absolute, stored_text

log = logging.getLogger("heron.rest")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
KEEP_JOBS = 1000  # finished jobs remembered; the oldest are forgotten first

__all__ = ["DONE", "FAILED", "QUEUED", "RUNNING", "Job", "JobManager"]


@dataclass
class Job:
    id: str
    folder: Path
    files: list[SavedFile]
    state: str = QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: IndexProgress | None = None
    report: IndexReport | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The job as a client sees it: no server paths."""
        return {
            "id": self.id,
            "state": self.state,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": self._progress(),
            "files": self.outcomes or [_pending(f) for f in self.files],
            "report": self._report(),
            "error": self.error,
        }

    def _progress(self) -> dict[str, Any]:
        total = len(self.files)
        if self.progress is None:
            done = total if self.state == DONE else 0
            return {"done": done, "total": total, "rate": None, "eta_s": 0.0 if done else None}
        p = self.progress
        rate = p.done / p.elapsed if p.elapsed > 0 else None
        left = max(p.total - p.done, 0)
        return {
            "done": p.done,
            "total": p.total,
            "indexed_units": p.indexed,
            "linked": p.linked,
            "skipped": p.skipped,
            "rate": round(rate, 3) if rate is not None else None,  # files per second
            "eta_s": round(left / rate, 3) if rate else (0.0 if left == 0 else None),
            "elapsed_s": round(p.elapsed, 3),
        }

    def _report(self) -> dict[str, Any] | None:
        r = self.report
        if r is None:
            return None
        return {
            "seen": r.seen,
            "unchanged": r.unchanged,
            "indexed_units": r.indexed,
            "sources": r.sources,
            "units_by_kind": r.units_by_kind,
            "linked": r.linked,
            "skipped": r.skipped,
            "seconds": round(r.seconds, 3),
            "units_per_second": round(r.units_per_second, 2),
        }


def _pending(saved: SavedFile) -> dict[str, Any]:
    return {
        "upload_id": saved.upload_id,
        "name": saved.name,
        "stored_as": saved.stored_as,
        "media_type": saved.media_type,
        "bytes": saved.bytes,
        "outcome": "pending",
        "reason": None,
        "item_ids": [],
    }


class ShuttingDownError(HeronError):
    """Uploads arrived while the server stops."""

    code = "shutting_down"
    status = 503


class JobManager:
    """Queues jobs and runs them on one worker thread, started on the first job."""

    def __init__(self, heron: Callable[[], Heron], hide: Callable[[str], str]) -> None:
        self._heron = heron
        self._hide = hide  # takes server paths out of a message
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._uploads: dict[str, SavedFile] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False

    def reopen(self) -> None:
        """Take jobs again after `close` (an app started again in the same process)."""
        with self._lock:
            if self._closed:
                self._closed = False
                self._queue = queue.Queue()
                self._worker = None

    def submit(self, job: Job) -> Job:
        with self._lock:
            if self._closed:
                raise ShuttingDownError("the server is shutting down; upload again shortly")
            self._jobs[job.id] = job
            for saved in job.files:
                self._uploads[saved.upload_id] = saved
            self._forget_old()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="heron-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def upload(self, upload_id: str) -> SavedFile | None:
        with self._lock:
            return self._uploads.get(upload_id)

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts = dict.fromkeys((QUEUED, RUNNING, DONE, FAILED), 0)
            for job in self._jobs.values():
                counts[job.state] += 1
            return counts

    def close(self, timeout: float = 30.0) -> None:
        """Take no more jobs, let the queued ones run, wait up to `timeout` for the worker."""
        with self._lock:
            self._closed = True
            worker = self._worker
        self._queue.put(None)
        if worker is not None:
            worker.join(timeout)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in (DONE, FAILED)]
        for job in finished[: max(0, len(self._jobs) - KEEP_JOBS)]:
            del self._jobs[job.id]
            for saved in job.files:
                self._uploads.pop(saved.upload_id, None)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        job.state, job.started_at = RUNNING, time.time()

        def on_progress(progress: IndexProgress) -> None:
            job.progress = progress

        try:
            heron = self._heron()
            job.report = heron.index([job.folder], on_progress=on_progress)
            job.outcomes = self._outcomes(heron, job)
            job.state = DONE
        except USER_ERRORS as exc:
            job.error = {"code": classify(exc)[1], "message": self._hide(str(exc))}
            job.state = FAILED
        except Exception as exc:  # a bug: logged, and the worker lives on
            log.exception("ingest job %s failed", job.id)
            job.error = {"code": "internal_error", "message": f"{type(exc).__name__}; see the log"}
            job.state = FAILED
        finally:
            job.finished_at = time.time()

    def _outcomes(self, heron: Heron, job: Job) -> list[dict[str, Any]]:
        """Each uploaded file's outcome, from the run's report and the catalog."""
        report = job.report
        assert report is not None
        reasons: dict[str, tuple[str, str]] = {}
        for outcome, entries in (
            ("skipped", report.problems),
            ("skipped", report.skipped_files),
            ("indexed_in_part", report.incomplete),
        ):
            for entry in entries:
                reasons[entry["path"]] = (outcome, entry["reason"])
        units = heron.units_of([f.path for f in job.files])
        out = []
        for saved in job.files:
            item = _pending(saved)
            ids = units.get(str(saved.path), [])
            outcome, reason = reasons.get(stored_text(absolute(saved.path)), ("", ""))
            if not outcome:
                outcome = "indexed" if ids else "not_indexed"
            item.update(
                outcome=outcome,
                reason=self._hide(reason).replace(f"<data dir>/uploads/{job.id}/", "") or None,
                item_ids=ids,
            )
            out.append(item)
        return out


def remove_job_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
