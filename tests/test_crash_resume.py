"""SIGKILL an indexing run at random moments; a clean rerun must end exact and consistent."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DATA, flickr_split, link_images, run_cli, run_json

pytestmark = pytest.mark.slow
IMAGES = 1200  # ~5 s of indexing here: room for a kill mid-run


def _start_index(folder: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "heron.cli", "--data-dir", str(data_dir)]
    return subprocess.Popen(
        [*command, "index", str(folder), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def _committing(process: subprocess.Popen[bytes]) -> None:
    """Wait for the run's first progress line: one commit group has landed (or the run ended)."""
    assert process.stdout is not None
    process.stdout.readline()


def test_killed_runs_resume_to_exactly_one_row_per_unit(heron_lite: Path, tmp_path: Path) -> None:
    names = [str(r["image"]) for r in flickr_split("train")[:IMAGES]]
    folder = link_images(names, DATA / "flickr8k" / "images", tmp_path / "images")
    data_dir = tmp_path / "data"
    rng = random.Random(int(os.environ.get("HERON_CRASH_SEED", time.time())))
    kills = 0
    for _ in range(4):
        process = _start_index(folder, data_dir)
        # Killed at a random moment once it writes, not after a fixed delay: a fast machine
        # would otherwise finish every run before the kill and prove nothing.
        _committing(process)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        assert process.stdout is not None
        process.stdout.close()
    assert kills >= 1, "every run finished before it could be killed; the test proved nothing"

    final = json.loads(
        run_cli("index", str(folder), "--json", data_dir=data_dir).stdout.splitlines()[-1]
    )["report"]
    assert final["skipped"] == 0
    stats = run_json("stats", data_dir=data_dir)
    assert stats["units"] == stats["rows"] == IMAGES
    assert stats["files"] == {"indexed": IMAGES}
    assert stats["consistent"] is True
    again = json.loads(
        run_cli("index", str(folder), "--json", data_dir=data_dir).stdout.splitlines()[-1]
    )["report"]
    assert again["unchanged"] == IMAGES and again["indexed"] == 0
