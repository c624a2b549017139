"""Walk folders for files to ingest, in a deterministic order, reporting what cannot be walked.

Paths are absolute but not resolved: a file reached through a symlinked folder keeps the link's
path (the name the user sees). Directories are followed through symlinks and remembered by
(st_dev, st_ino), so a link back to an ancestor is reported once as a loop and a second link to
an already-walked folder is reported as a duplicate; neither is walked again.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from heron.extract.images import IMAGE_SUFFIXES
from heron.util.paths import absolute

ProblemKind = Literal["missing", "unreadable", "loop", "duplicate", "broken_link", "unsupported"]


@dataclass(frozen=True)
class CrawlEntry:
    """A regular file to ingest (its name has a wanted suffix; its content is not checked here)."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class CrawlProblem:
    """Something under a root that could not be walked; `reason` is a short human sentence."""

    path: Path
    kind: ProblemKind
    reason: str


CrawlEvent = CrawlEntry | CrawlProblem
_DirKey = tuple[int, int]


def walk(
    roots: Sequence[Path],
    include_hidden: bool = False,
    suffixes: Iterable[str] = IMAGE_SUFFIXES,
    ignored: Counter[str] | None = None,
) -> Iterator[CrawlEvent]:
    """Yield a CrawlEntry per wanted file under `roots`, a CrawlProblem per thing not walkable.

    Roots may be folders or single files; they are walked in sorted order, each depth-first with
    entries sorted by name. Dot-named entries below a root are skipped unless `include_hidden`.
    Only regular files are yielded (never FIFOs or devices, which would block a reader). Files
    of other types are counted by suffix into `ignored`, when given.
    """
    walker = _Walker(include_hidden, _normalise_suffixes(suffixes), ignored)
    for root in sorted({absolute(root) for root in roots}):
        yield from walker.walk_root(root)


def hidden_below(path: Path, roots: Sequence[Path]) -> bool:
    """True when some part of `path` below the root that holds it is dot-named."""
    for root in roots:
        try:
            relative = path.relative_to(root)
        except ValueError:
            continue
        if any(part.startswith(".") for part in relative.parts):
            return True
    return False


def _normalise_suffixes(suffixes: Iterable[str]) -> frozenset[str]:
    return frozenset(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)


class _Walker:
    def __init__(
        self, include_hidden: bool, suffixes: frozenset[str], ignored: Counter[str] | None
    ) -> None:
        self.include_hidden = include_hidden
        self.suffixes = suffixes
        self.ignored = ignored
        self.visited: dict[_DirKey, Path] = {}  # every directory walked, across roots

    def wanted(self, name: str) -> bool:
        return os.path.splitext(name)[1].lower() in self.suffixes

    def walk_root(self, root: Path) -> Iterator[CrawlEvent]:
        try:
            info = root.stat()
        except OSError as exc:
            yield _stat_problem(root, exc)
            return
        if stat.S_ISDIR(info.st_mode):
            yield from self.walk_tree(root, info)
        elif not stat.S_ISREG(info.st_mode):
            yield CrawlProblem(root, "unsupported", "not a regular file or folder")
        elif not self.wanted(root.name):
            yield CrawlProblem(root, "unsupported", f"unsupported file type {root.suffix!r}")
        elif not self.already_walked(root):
            yield CrawlEntry(root, info.st_size, info.st_mtime_ns)

    def already_walked(self, file: Path) -> bool:
        """True when a file root was yielded already by an earlier folder root."""
        if not self.include_hidden and file.name.startswith("."):
            return False
        try:
            parent = file.parent.stat()
        except OSError:
            return False
        return (parent.st_dev, parent.st_ino) in self.visited

    def walk_tree(self, root: Path, info: os.stat_result) -> Iterator[CrawlEvent]:
        key = (info.st_dev, info.st_ino)
        if key in self.visited:  # a root inside an earlier root: already walked
            return
        self.visited[key] = root
        ancestors: list[_DirKey] = [key]
        stack: list[Iterator[os.DirEntry[str]]] = []
        listing = self.list_dir(root)
        if isinstance(listing, CrawlProblem):
            yield listing
            return
        stack.append(iter(listing))
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                ancestors.pop()
                continue
            if not self.include_hidden and entry.name.startswith("."):
                continue
            event = self.visit(entry, ancestors)
            if isinstance(event, list):
                stack.append(iter(event))
            elif event is not None:
                yield event

    def visit(
        self, entry: os.DirEntry[str], ancestors: list[_DirKey]
    ) -> CrawlEvent | list[os.DirEntry[str]] | None:
        """An event to yield, a sorted listing to descend into (ancestors pushed), or None."""
        wanted = self.wanted(entry.name)
        if not wanted and entry.is_file(follow_symlinks=False):
            if self.ignored is not None:
                self.ignored[os.path.splitext(entry.name)[1].lower() or "(none)"] += 1
            return None  # the common case in mixed folders: decided from d_type, no stat call
        path = Path(entry.path)
        try:
            info = entry.stat()  # follows symlinks
        except OSError as exc:
            return self.dangling(path, exc) if entry.is_symlink() else _stat_problem(path, exc)
        if stat.S_ISREG(info.st_mode):
            return CrawlEntry(path, info.st_size, info.st_mtime_ns) if wanted else None
        if not stat.S_ISDIR(info.st_mode):
            return None
        key = (info.st_dev, info.st_ino)
        if key in ancestors:
            return CrawlProblem(path, "loop", f"symlink loop: points back to {self.visited[key]}")
        if key in self.visited:
            return CrawlProblem(path, "duplicate", f"already walked as {self.visited[key]}")
        self.visited[key] = path
        listing = self.list_dir(path)
        if isinstance(listing, CrawlProblem):
            return listing
        ancestors.append(key)
        return listing

    def dangling(self, path: Path, exc: OSError) -> CrawlProblem | None:
        """A symlink whose target cannot be reached; reported if it might have been wanted."""
        target = _readlink(path)
        # A link named like a photo, or to something named like one or like a folder, was
        # probably meant to be indexed; a dangling "notes.txt" link is none of our business.
        names = (path.name, os.path.basename(target))
        if exc.errno == errno.ELOOP or any(
            self.wanted(n) or not os.path.splitext(n)[1] for n in names
        ):
            return _stat_problem(path, exc)
        return None

    def list_dir(self, path: Path) -> list[os.DirEntry[str]] | CrawlProblem:
        try:
            with os.scandir(path) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as exc:
            return CrawlProblem(path, "unreadable", f"cannot read folder: {exc.strerror or exc}")


def _stat_problem(path: Path, exc: OSError) -> CrawlProblem:
    if exc.errno == errno.ELOOP:
        return CrawlProblem(path, "loop", "symlink loop: the link never resolves")
    if exc.errno == errno.ENOENT and path.is_symlink():
        return CrawlProblem(path, "broken_link", f"broken symlink to {_readlink(path) or '?'}")
    if exc.errno == errno.ENOENT:
        return CrawlProblem(path, "missing", "no such file or folder")
    return CrawlProblem(path, "unreadable", f"cannot stat: {exc.strerror or exc}")


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
