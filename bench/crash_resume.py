"""Kill `heron index` with SIGKILL at random moments, then finish with one clean run.

    python bench/crash_resume.py                       # all 7,000 Flickr8k images, 5 kills
    python bench/crash_resume.py --kills 3 --max-delay 20 --folder DIR

Prints what each killed run had committed and whether the final index holds exactly one row per
unit with store and catalog in agreement. Figures, not assertions: the test suite has the
assertive (smaller) version in tests/test_crash_resume.py.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def heron(data_dir: Path, *args: str) -> list[str]:
    cmd = [sys.executable, "-m", "heron.cli", "--data-dir", str(data_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()


def stats(data_dir: Path) -> dict:
    return json.loads(heron(data_dir, "stats", "--json")[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DATA / "flickr8k" / "images")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--min-delay", type=float, default=2.0)
    parser.add_argument("--max-delay", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    data_dir = Path(tempfile.mkdtemp(prefix="heron-crash-"))
    print(f"seed {seed}; data dir {data_dir}")
    try:
        for attempt in range(1, args.kills + 1):
            cmd = [
                sys.executable,
                "-m",
                "heron.cli",
                "--data-dir",
                str(data_dir),
                "index",
                str(args.folder),
            ]
            process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            delay = rng.uniform(args.min_delay, args.max_delay)
            time.sleep(delay)
            killed = process.poll() is None
            if killed:
                process.send_signal(signal.SIGKILL)
            process.wait()
            now = stats(data_dir)
            print(
                f"run {attempt}: {'killed' if killed else 'finished'} after {delay:5.1f}s; "
                f"units={now['units']} rows={now['rows']} files={now['files']} "
                f"consistent={now['consistent']}"
            )
        start = time.perf_counter()
        report = json.loads(heron(data_dir, "index", str(args.folder), "--json")[-1])["report"]
        final = stats(data_dir)
        print(
            f"clean run: {time.perf_counter() - start:.1f}s, reconciled {report['reconciled']}, "
            f"indexed {report['indexed']}, unchanged {report['unchanged']}"
        )
        print(
            f"final: units={final['units']} rows={final['rows']} files={final['files']} "
            f"consistent={final['consistent']}"
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
