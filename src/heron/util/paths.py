"""The one spelling of a file's path that Heron stores and compares."""

from __future__ import annotations

import os
from pathlib import Path


def absolute(path: str | os.PathLike[str]) -> Path:
    """`path` with `~` expanded, made absolute, `.` and `..` folded; symlinks are not resolved.

    The catalog keys files by this form, so every path a user gives (an index root, a folder to
    delete, an eval file's relevant images) must go through it before it is compared; a file
    reached through a symlinked folder keeps the link's path.
    """
    return Path(os.path.abspath(os.path.expanduser(path)))
