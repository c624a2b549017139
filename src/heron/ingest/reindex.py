"""Re-index a data dir into another model without taking it offline.

A data dir is bound to the model that made its vectors. Moving it to another model (a new
heron-lite version, a hub bundle) builds a complete *shadow* index of the same roots beside it,
in ``.reindex/<model>/`` — catalog, vectors and thumbnails, by the ordinary indexing run, so it
is incremental and resumable — while the live index keeps answering searches. When the shadow is
complete it replaces the live entries. The swap is journalled: the journal is written first, each
step is idempotent, and `finish_swap` (called whenever a data dir is opened) completes a swap that
a crash interrupted, so a data dir is always either wholly old or wholly new.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from heron.catalog import Catalog
from heron.util.paths import on_disk

SHADOWS = ".reindex"
JOURNAL = "swap.json"
# What makes up an index in a data dir (SQLite's WAL files travel with the catalog).
ENTRIES = (
    "catalog.sqlite",
    "catalog.sqlite-wal",
    "catalog.sqlite-shm",
    "vectors.lance",
    "thumbnails",
)


def shadow_dir(data_dir: Path, stamp: str) -> Path:
    """Where the shadow index for the model `stamp` is built."""
    return data_dir / SHADOWS / re.sub(r"[^A-Za-z0-9._@-]+", "_", stamp)


def index_roots(catalog: Catalog) -> list[Path]:
    """The roots earlier runs indexed that still hold indexed files, outermost only."""
    seen: list[str] = []
    for run in reversed(catalog.runs(limit=1_000_000)):
        for root in run.roots:
            if root not in seen:
                seen.append(root)
    kept = [root for root in seen if catalog.records_under([Path(on_disk(root))])]
    outermost = [
        root for root in kept if not any(_inside(root, other) for other in kept if other != root)
    ]
    return [Path(on_disk(root)) for root in sorted(outermost)]


def _inside(path: str, root: str) -> bool:
    return path.startswith(root.rstrip(os.sep) + os.sep)


def swap_in(data_dir: Path, shadow: Path) -> None:
    """Replace the live index entries of `data_dir` by those of `shadow` (crash-safe).

    Both indexes must be closed: SQLite then has folded its WAL into the catalog file.
    """
    present = [name for name in ENTRIES if (shadow / name).exists()]
    journal = data_dir / SHADOWS / JOURNAL
    _write_atomically(journal, json.dumps({"shadow": shadow.name, "entries": present}))
    finish_swap(data_dir)


def finish_swap(data_dir: Path) -> bool:
    """Complete a journalled swap, if one is pending; True when one was."""
    journal = data_dir / SHADOWS / JOURNAL
    if not journal.is_file():
        return False
    plan = json.loads(journal.read_text(encoding="utf-8"))
    shadow = data_dir / SHADOWS / plan["shadow"]
    retired = data_dir / SHADOWS / "retired"
    retired.mkdir(parents=True, exist_ok=True)
    for name in ENTRIES:
        incoming, live = shadow / name, data_dir / name
        if name in plan["entries"]:
            if incoming.exists():  # else: moved in by the interrupted run
                _retire(live, retired / name)
                incoming.rename(live)
        else:  # e.g. a WAL file of the old catalog: it must not meet the new one
            _retire(live, retired / name)
    journal.unlink()
    shutil.rmtree(retired, ignore_errors=True)
    shutil.rmtree(shadow, ignore_errors=True)
    with contextlib.suppress(OSError):  # other models' shadows may still be in there
        (data_dir / SHADOWS).rmdir()
    return True


def _retire(live: Path, old: Path) -> None:
    if not live.exists():
        return
    if old.exists():  # retired by the interrupted run already; this one is a leftover
        _remove(live)
    else:
        live.rename(old)


def abandon(shadows: Iterable[Path]) -> None:
    """Drop shadow indexes of other models (a reindex into yet another model started over)."""
    for shadow in shadows:
        shutil.rmtree(shadow, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
