"""ANN benchmark: LanceStore (with its FAISS mirror, and Lance alone) vs bare FAISS vs numpy.

Synthetic, clustered, L2-normalised vectors (a Gaussian mixture around a shared mean direction,
with power-law cluster sizes, roughly like CLIP-style embeddings) and queries drawn from the
same mixture. For each size it reports load + index time, query latency p50/p99 and recall@10
against exact search, unfiltered and with filters keeping 1 %, 10 % and 50 % of rows, and memory.
Store figures are end to end: `LanceStore.search` returning hits with their rows.

    python bench/bench_ann.py --sizes 10000,100000,1000000 --queries 200 [--json]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from heron.store.filters import Field, Filter
from heron.store.lance import AnnSettings, LanceStore

K = 10
LOAD_BATCH = 20_000
# Row kinds drawn with these shares; the filters below keep 1 %, 10 % and 50 % of rows.
KIND_SHARES = {"figure": 0.01, "page": 0.09, "frame": 0.40, "image": 0.50}
FILTERS: dict[str, Filter] = {
    "1%": Field("kind") == "figure",
    "10%": Field("kind").isin(["figure", "page"]),
    "50%": Field("kind") != "image",
}
FILTER_KINDS = {"1%": {"figure"}, "10%": {"figure", "page"}, "50%": {"figure", "page", "frame"}}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Mixture:
    centers: np.ndarray
    weights: np.ndarray
    spreads: np.ndarray


def make_mixture(dim: int, clusters: int, rng: np.random.Generator) -> Mixture:
    mean = rng.standard_normal(dim).astype(np.float32)
    mean /= np.linalg.norm(mean)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    # A shared direction makes unrelated vectors mildly similar, as real embeddings are.
    centers = 0.5 * mean + centers
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.7
    spreads = rng.uniform(0.03, 0.07, clusters).astype(np.float32)
    return Mixture(centers, weights / weights.sum(), spreads)


def sample(mix: Mixture, n: int, rng: np.random.Generator) -> np.ndarray:
    dim = mix.centers.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        idx = rng.choice(len(mix.centers), m, p=mix.weights)
        x = (
            mix.centers[idx]
            + rng.standard_normal((m, dim), dtype=np.float32) * mix.spreads[idx, None]
        )
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k most similar vectors for each query, best first."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 32):
        sims = queries[start : start + 32] @ data.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start : start + 32] = np.take_along_axis(part, order, axis=1)
    return out


# --------------------------------------------------------------------------- measuring


class PeakRss:
    """Samples this process's RSS in a thread; ``peak_mb`` is the high-water mark seen."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.proc = psutil.Process()
        self.start_mb = self.peak_mb = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> float:
        return self.proc.memory_info().rss / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    yield box
    box.append(time.perf_counter() - start)


@dataclass
class QueryStats:
    p50_ms: float
    p99_ms: float
    recall: float


@dataclass
class EngineResult:
    engine: str
    build_s: float
    load_s: float = 0.0
    index_s: float = 0.0
    rss_peak_mb: float | None = None  # process RSS high-water mark while this engine ran
    rss_delta_mb: float | None = None  # ... minus the RSS when it started
    note: str = ""
    plain: QueryStats | None = None
    filtered: dict[str, QueryStats] = field(default_factory=dict)  # by selectivity


@dataclass
class SizeResult:
    n: int
    dim: int
    queries: int
    gen_s: float
    engines: list[EngineResult] = field(default_factory=list)


def run_queries(
    search: Callable[[np.ndarray], list[int]], queries: np.ndarray, truth: np.ndarray
) -> QueryStats:
    search(queries[0])  # warm caches; not timed
    latencies, recalls = [], []
    for q, expected in zip(queries, truth, strict=True):
        start = time.perf_counter()
        got = search(q)
        latencies.append(time.perf_counter() - start)
        recalls.append(len(set(got[:K]) & set(expected.tolist())) / K)
    lat = np.array(latencies) * 1000
    return QueryStats(
        float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), float(np.mean(recalls))
    )


# --------------------------------------------------------------------------- engines


@dataclass
class Workload:
    data: np.ndarray
    kinds: np.ndarray
    queries: np.ndarray
    truth: np.ndarray
    masks: dict[str, np.ndarray]
    truths: dict[str, np.ndarray]


def bench_numpy(w: Workload) -> EngineResult:
    def top(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
        sims = matrix @ q
        part = np.argpartition(-sims, K)[:K]
        return part[np.argsort(-sims[part])]

    result = EngineResult("numpy exact", build_s=0.0, note="brute force")
    result.plain = run_queries(lambda q: top(w.data, q).tolist(), w.queries, w.truth)
    for name, mask in w.masks.items():
        subset = np.flatnonzero(mask)
        sub_data = w.data[subset]
        result.filtered[name] = run_queries(
            lambda q, s=subset, d=sub_data: s[top(d, q)].tolist(), w.queries, w.truths[name]
        )
    return result


def bench_lance(w: Workload, workdir: Path, ann: AnnSettings, reopen: bool) -> EngineResult:
    """LanceStore end to end. With ``ann.mirror`` the searches are the mirror's; ``reopen``
    measures a fresh process's view: the store opened again, loading the saved mirror."""
    path = workdir / f"lance-{len(w.data)}-{'mirror' if ann.mirror else 'plain'}"
    shutil.rmtree(path, ignore_errors=True)
    gc.collect()
    with PeakRss() as rss:
        store = LanceStore(path, dim=w.data.shape[1], ann=ann)
        with timed() as load_t:
            for start in range(0, len(w.data), LOAD_BATCH):
                stop = min(start + LOAD_BATCH, len(w.data))
                store.insert_new(
                    {"id": str(i), "vector": w.data[i], "model": "bench@1", "kind": w.kinds[i]}
                    for i in range(start, stop)
                )
        with timed() as index_t:
            store.optimize()
        open_s = 0.0
        if reopen:
            store.close()
            gc.collect()
            with timed() as open_t:
                store = LanceStore(path, ann=ann)
                store.search(w.queries[0], 1)  # loads the saved mirror
            open_s = open_t[0]
        info = store.index_info()
        mirror = info.get("mirror") if info else None
        if not info:
            note = "exact (below index threshold)"
        elif mirror:
            note = (
                f"FAISS mirror, {mirror['lists']} lists, nprobe {ann.mirror_settings.nprobe}; "
                f"{mirror['memory_bytes'] / 2**20:.0f} MB held"
                + (f"; reopened + loaded in {open_s:.1f}s" if reopen else "")
            )
        else:
            note = f"{info['kind']} nprobes={ann.nprobes} refine={ann.refine_factor}"
        result = EngineResult(
            "LanceStore" if ann.mirror else "Lance alone",
            build_s=load_t[0] + index_t[0],
            load_s=load_t[0],
            index_s=index_t[0],
            note=note,
        )
        result.plain = run_queries(
            lambda q: [int(h.id) for h in store.search(q, K)], w.queries, w.truth
        )
        for name, flt in FILTERS.items():
            result.filtered[name] = run_queries(
                lambda q, f=flt: [int(h.id) for h in store.search(q, K, f)],
                w.queries,
                w.truths[name],
            )
        store.close()
    result.rss_peak_mb, result.rss_delta_mb = rss.peak_mb, rss.peak_mb - rss.start_mb
    shutil.rmtree(path, ignore_errors=True)
    return result


def bench_faiss(w: Workload) -> EngineResult | None:
    try:
        import faiss
    except ImportError:
        return None
    data = w.data
    n, dim = data.shape
    nlist = int(min(4096, max(16, round(math.sqrt(n)))))
    nprobe = min(nlist, 10)
    gc.collect()
    with PeakRss() as rss:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(1)
        train = data[rng.choice(n, min(n, 64 * nlist), replace=False)]
        with timed() as train_t:
            index.train(train)
        with timed() as add_t:
            index.add(data)
        plain_params = faiss.SearchParametersIVF(nprobe=nprobe)

        def search(params: Any) -> Callable[[np.ndarray], list[int]]:
            def run(q: np.ndarray) -> list[int]:
                _, ids = index.search(q[None, :], K, params=params)
                return [int(i) for i in ids[0] if i >= 0]

            return run

        result = EngineResult(
            "FAISS IVF-Flat",
            build_s=train_t[0] + add_t[0],
            load_s=add_t[0],
            index_s=train_t[0],
            note=f"bare index: nlist={nlist} nprobe={nprobe}, filtered nprobe/sqrt(share)",
        )
        result.plain = run_queries(search(plain_params), w.queries, w.truth)
        for name, mask in w.masks.items():
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            probes = min(nlist, math.ceil(nprobe / math.sqrt(mask.mean())))
            params = faiss.SearchParametersIVF(nprobe=probes, sel=selector)
            result.filtered[name] = run_queries(search(params), w.queries, w.truths[name])
    result.rss_peak_mb, result.rss_delta_mb = rss.peak_mb, rss.peak_mb - rss.start_mb
    return result


# --------------------------------------------------------------------------- driver


def bench_size(n: int, args: argparse.Namespace, workdir: Path) -> SizeResult:
    rng = np.random.default_rng(args.seed)
    with timed() as gen_t:
        mix = make_mixture(args.dim, args.clusters, rng)
        data = sample(mix, n, rng)
        queries = sample(mix, args.queries, rng)
        kinds = rng.choice(list(KIND_SHARES), n, p=list(KIND_SHARES.values()))
        masks = {name: np.isin(kinds, list(keep)) for name, keep in FILTER_KINDS.items()}
        truths = {}
        for name, mask in masks.items():
            subset = np.flatnonzero(mask)
            truths[name] = subset[exact_topk(data[subset], queries, K)]
        w = Workload(data, kinds, queries, exact_topk(data, queries, K), masks, truths)
    result = SizeResult(n=n, dim=args.dim, queries=args.queries, gen_s=gen_t[0])
    log(f"n={n:,}: data ready in {gen_t[0]:.1f}s")
    engines = args.engines.split(",")
    if "numpy" in engines:
        result.engines.append(bench_numpy(w))
        log(f"n={n:,}: numpy done")
    if "lance" in engines:
        ann = AnnSettings(threshold=args.threshold)
        result.engines.append(bench_lance(w, workdir, ann, reopen=args.reopen))
        log(f"n={n:,}: lance + mirror done")
    if "lance-alone" in engines:
        ann = AnnSettings(threshold=args.threshold, mirror=False)
        result.engines.append(bench_lance(w, workdir, ann, reopen=False))
        log(f"n={n:,}: lance alone done")
    if "faiss" in engines and (res := bench_faiss(w)) is not None:
        result.engines.append(res)
        log(f"n={n:,}: faiss done")
    return result


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def print_table(results: list[SizeResult]) -> None:
    header = (
        f"{'rows':>9}  {'engine':<14} {'filter':>6} {'p50 ms':>7} {'p99 ms':>7} {'R@10':>6}"
        f"  {'build s':>7} {'RSS peak':>8} {'(+MB)':>7}  note"
    )
    print(header)
    print("-" * len(header))
    for size in results:
        for e in size.engines:
            assert e.plain is not None
            for i, (name, q) in enumerate([("none", e.plain), *e.filtered.items()]):
                first = i == 0
                rows, engine = (f"{size.n:,}", e.engine) if first else ("", "")
                print(
                    f"{rows:>9}  {engine:<14} {name:>6}"
                    f" {q.p50_ms:>7.2f} {q.p99_ms:>7.2f} {q.recall:>6.3f}"
                    + (
                        f"  {e.build_s:>7.1f} {_mb(e.rss_peak_mb):>8}"
                        f" {_mb(e.rss_delta_mb, sign=True):>7}  {e.note}"
                        if first
                        else ""
                    )
                )
    print(
        f"\nrecall@{K} against exact search; filters on kind keep 1 %, 10 % and 50 % of rows; "
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


def _mb(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.0f}" if sign else f"{value:.0f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--threshold", type=int, default=AnnSettings().threshold)
    parser.add_argument("--engines", default="numpy,lance,lance-alone,faiss")
    parser.add_argument(
        "--reopen", action="store_true", help="measure LanceStore reopened (the saved mirror)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where Lance tables go")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="heron-bench-"))
    results = [bench_size(n, args, workdir) for n in sizes]
    print_table(results)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
