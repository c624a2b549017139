"""The one spelling of a file's path that Heron stores and compares."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def absolute(path: str | os.PathLike[str]) -> Path:
    """`path` with `~` expanded, made absolute, `.` and `..` folded; symlinks are not resolved.

    The catalog keys files by this form, so every path a user gives (an index root, a folder to
    delete, an eval file's relevant images) must go through it before it is compared; a file
    reached through a symlinked folder keeps the link's path.
    """
    return Path(os.path.abspath(os.path.expanduser(path)))


def existing(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """`absolute` of each path, or FileNotFoundError naming the first that does not exist."""
    found = [absolute(path) for path in paths]
    for path in found:
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {path}")
    return found
