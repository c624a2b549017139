"""The one spelling of a file's path that Heron stores and compares.

A file name need not be valid UTF-8 (names copied from old Windows shares often hold Latin-1
bytes, such as b"caf\\xe9.jpg"). Python hands such a name over with each undecodable byte as a
lone surrogate ("caf\\udce9.jpg"), which neither SQLite, Arrow, JSON nor a UTF-8 terminal can
take. `stored_text` turns it into the text Heron keeps and shows, with the usual escape for
undecodable bytes ("caf\\\\xe9.jpg", the backslash escape `ascii()` and `backslashreplace`
write); valid names stay as they are. `on_disk` turns that text back into the path to open.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from heron.util.errors import HeronError

_ESCAPED_BYTE = re.compile(rb"\\x([89a-fA-F][0-9a-fA-F])")


def absolute(path: str | os.PathLike[str]) -> Path:
    """`path` with `~` expanded, made absolute, `.` and `..` folded; symlinks are not resolved.

    The catalog keys files by this form, so every path a user gives (an index root, a folder to
    delete, an eval file's relevant images) must go through it before it is compared; a file
    reached through a symlinked folder keeps the link's path.
    """
    return Path(os.path.abspath(os.path.expanduser(path)))


def stored_text(path: str | os.PathLike[str]) -> str:
    """The text the catalog and the store keep for `path`, valid UTF-8 whatever the name's bytes.

    Each byte that is not UTF-8 (a surrogate from Python's `surrogateescape` decoding) becomes
    a `\\xNN` escape; a name that is valid UTF-8 comes back unchanged, so this is idempotent.
    Any text is accepted, so a message that quotes a path can go through it too.
    """
    text = os.fspath(path)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape") if _escaped_only(text) else None
        if raw is None:  # a lone surrogate no file name can hold: escape it as itself
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return text


def on_disk(text: str) -> str:
    """The filesystem path for a path's stored text (the inverse of `stored_text`).

    The text itself when it names something (a valid name, even one that holds a literal
    backslash-x sequence); otherwise each `\\xNN` escape of a byte 0x80–0xff becomes that byte
    again, decoded the way Python decodes file names (`os.fsdecode`).
    """
    if "\\x" not in text or os.path.lexists(text):
        return text
    raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    return os.fsdecode(raw)


def _escaped_only(text: str) -> bool:
    """True when every surrogate in `text` is one `surrogateescape` makes (U+DC80–U+DCFF)."""
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


class MissingPathError(HeronError, FileNotFoundError):
    """A path the user gave does not exist (an internal FileNotFoundError is a bug, not this)."""

    code = "not_found"
    status = 404


def existing(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """`absolute` of each path, or MissingPathError naming the first that does not exist."""
    found = [absolute(path) for path in paths]
    for path in found:
        if not path.exists():
            raise MissingPathError(f"no such file or directory: {stored_text(path)}")
    return found
