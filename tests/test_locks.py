"""The index lock: one writer per data dir, released by the OS when its holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heron.util.locks import LockedError, exclusive_lock

HOLD = """
import sys, time
from pathlib import Path
from heron.util.locks import exclusive_lock
with exclusive_lock(Path(sys.argv[1]), "test"):
    print("held", flush=True)
    time.sleep(60)
"""


def _acquire(lock: Path) -> None:
    with exclusive_lock(lock, "an index run"):
        pass


def test_a_second_holder_is_refused_with_the_first_holders_pid(tmp_path: Path) -> None:
    lock = tmp_path / "index.lock"
    refused = rf"an index run is already running \(pid {os.getpid()}\)"
    with exclusive_lock(lock, "an index run"), pytest.raises(LockedError, match=refused):
        _acquire(lock)
    _acquire(lock)  # released on exit


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "index.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=str(holder.pid)):
            _acquire(lock)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.monotonic() + 5
    while True:
        try:
            _acquire(lock)
            break
        except LockedError:
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.05)
