"""Load benchmark of `heron serve` on loopback: concurrent searches while an upload ingests.

A real uvicorn server (the REST API of heron.interfaces.rest) over a library of Flickr8k val
photos; `--clients` threads send text searches (captions, English and Chinese) as fast as
they can, first alone (the baseline) and then while one upload job ingests `--upload` more
photos. Prints p50/p99 latency, throughput and errors for both phases, their ratio, and the
job's own rate. Bounded in time and count; asserts nothing.

    python bench/bench_service.py --library 1000 --upload 1000 --clients 16 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from heron import Heron  # noqa: E402
from heron.config import Settings  # noqa: E402
from heron.interfaces.rest import create_app  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "flickr8k"
UPLOAD_BATCH = 100  # files per upload request (the API's max_files_per_request)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def records() -> list[dict]:
    lines = (DATA / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


class Clients:
    """`n` threads searching until stopped; each request's latency and outcome."""

    def __init__(self, url: str, n: int, queries: list[str]) -> None:
        self.url, self.n, self.queries = url, n, queries
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run(self, seconds: float, max_requests: int) -> float:
        self.latencies, self.errors = [], []
        self._stop.clear()
        threads = [threading.Thread(target=self._client, args=(i, max_requests // self.n))
                   for i in range(self.n)]  # fmt: skip
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        self._stop.wait(seconds)
        self._stop.set()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    def stop(self) -> None:
        self._stop.set()

    def _client(self, seed: int, budget: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for _ in range(budget):
                if self._stop.is_set():
                    return
                query = self.queries[int(rng.integers(len(self.queries)))]
                start = time.perf_counter()
                try:
                    response = client.post("/v1/search", json={"query": query, "k": 10})
                    failed = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as exc:
                    failed = type(exc).__name__
                took = time.perf_counter() - start
                with self._lock:
                    self.latencies.append(took)
                    if failed:
                        self.errors.append(failed)


def summary(name: str, clients: Clients, wall: float) -> dict[str, float]:
    lat = np.array(clients.latencies) * 1000
    result = {
        "requests": len(lat),
        "errors": len(clients.errors),
        "rps": len(lat) / wall,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }
    print(
        f"{name:<22} {result['requests']:>8} req {result['rps']:>7.1f}/s "
        f"p50 {result['p50_ms']:>7.1f} ms  p99 {result['p99_ms']:>7.1f} ms  "
        f"errors {result['errors']}"
        + (f" ({sorted(set(clients.errors))})" if clients.errors else "")
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=int, default=1000, help="photos indexed first")
    parser.add_argument("--upload", type=int, default=1000, help="photos the upload job ingests")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="baseline phase length")
    parser.add_argument("--max-requests", type=int, default=20_000)
    args = parser.parse_args(argv)

    import uvicorn

    every = records()
    val = [r for r in every if r["split"] == "val"][: args.library]
    train = [r for r in every if r["split"] == "train"][: args.upload]
    queries = [c for r in val for c in (r["en"][0], r["zh"][0])]
    work = Path(tempfile.mkdtemp(prefix="heron-service-"))
    try:
        library = work / "library"
        library.mkdir()
        for r in val:
            (library / r["image"]).symlink_to(DATA / "images" / r["image"])
        settings = Settings.load(data_dir=work / "data")
        with Heron(settings=settings) as heron:
            started = time.perf_counter()
            heron.index([library])
            print(f"library: {len(val)} photos indexed in {time.perf_counter() - started:.1f} s")
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings=settings), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        while not server.started:
            time.sleep(0.05)
        httpx.post(f"{url}/v1/search", json={"query": "warm up", "k": 10}, timeout=120)
        clients = Clients(url, args.clients, queries)
        print(f"{args.clients} clients, k=10, captions in English and Chinese")
        base = summary("search alone", clients, clients.run(args.seconds, args.max_requests))

        batches = [train[i : i + UPLOAD_BATCH] for i in range(0, len(train), UPLOAD_BATCH)]
        with httpx.Client(base_url=url, timeout=600) as client:
            job_started = time.perf_counter()
            loaded = threading.Thread(
                target=clients.run, args=(3600, args.max_requests), daemon=True
            )
            loaded.start()
            jobs = []
            for batch in batches:  # one job per request (the API takes 100 files at a time)
                files = [
                    (
                        "files",
                        (r["image"], (DATA / "images" / r["image"]).read_bytes(), "image/jpeg"),
                    )
                    for r in batch
                ]
                answer = client.post("/v1/items", files=files)
                answer.raise_for_status()
                jobs.append(answer.json()["id"])
            states = []
            for job_id in jobs:
                while (state := client.get(f"/v1/jobs/{job_id}").json())["state"] not in (
                    "done",
                    "failed",
                ):
                    time.sleep(0.5)
                states.append(state["state"])
            job_s = time.perf_counter() - job_started
            clients.stop()
            loaded.join()
        state = {"state": ",".join(sorted(set(states)))}
        busy = summary("search during ingest", clients, job_s)
        print(
            f"upload job: {state['state']}, {len(train)} photos in {job_s:.1f} s "
            f"({len(train) / job_s:.1f} photos/s while serving)"
        )
        print(
            f"during ingest / alone: p50 x{busy['p50_ms'] / base['p50_ms']:.2f}, "
            f"p99 x{busy['p99_ms'] / base['p99_ms']:.2f}, "
            f"throughput x{busy['rps'] / base['rps']:.2f}"
        )
        server.should_exit = True
        thread.join(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
