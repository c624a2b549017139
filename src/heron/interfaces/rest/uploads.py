"""Files clients upload: what they are (by their bytes, never by their name) and where they go.

A client's file name is a hint for the stored name only: its directories are stripped, its
characters reduced to letters, digits, `-`, `_` and `.`, and its suffix replaced by the one
the content announces. Each file is streamed to a hidden part file inside the job's folder,
counted against the size limit as it arrives, sniffed, then renamed into place.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

CHUNK_BYTES = 1024 * 1024
HEAD_BYTES = 4096
MAX_STEM_CHARS = 80

__all__ = [
    "FileType",
    "SavedFile",
    "TooLarge",
    "UnsupportedType",
    "safe_stem",
    "save_upload",
    "sniff",
]


class TooLarge(Exception):
    """The file is larger than the limit (HTTP 413)."""


class UnsupportedType(Exception):
    """The content is none of the types Heron takes by upload (HTTP 415)."""


@dataclass(frozen=True)
class FileType:
    suffix: str  # ".jpg"
    media_type: str  # "image/jpeg"


JPEG = FileType(".jpg", "image/jpeg")
PNG = FileType(".png", "image/png")
GIF = FileType(".gif", "image/gif")
WEBP = FileType(".webp", "image/webp")
PDF = FileType(".pdf", "application/pdf")
PPTX = FileType(
    ".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"
)
DOCX = FileType(".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
MP4 = FileType(".mp4", "video/mp4")
WEBM = FileType(".webm", "video/webm")
TEXT = FileType(".txt", "text/plain")
MARKDOWN = FileType(".md", "text/markdown")

ACCEPTED = "JPEG, PNG, GIF, WebP, PDF, PPTX, DOCX, MP4, WebM, UTF-8 text and Markdown"
IMAGE_TYPES = frozenset({JPEG, PNG, GIF, WEBP})

# ISO base media brands that are pictures or sound, not movies (HEIF, AVIF, M4A ...)
_NOT_MOVIE_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis",
     b"M4A ", b"M4B ", b"M4P ", b"jp2 ", b"crx "}
)  # fmt: skip


def sniff(head: bytes, path: Path | None = None, *, utf8_text: bool = False) -> FileType | None:
    """The type the first bytes (`head`) announce; `path` is opened for ZIP containers, and
    `utf8_text` says the whole content decoded as UTF-8 without NUL bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if head[4:8] == b"ftyp" and head[8:12] not in _NOT_MOVIE_BRANDS:
        return MP4
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return WEBM
    if head.startswith(b"PK\x03\x04") and path is not None:
        return _office_type(path)
    if utf8_text and head.strip():
        return TEXT
    return None


def _office_type(path: Path) -> FileType | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "ppt/presentation.xml" in names:
        return PPTX
    if "word/document.xml" in names:
        return DOCX
    return None


def safe_stem(client_name: str | None) -> str:
    """A file-name stem from a client's name: no directories (either slash), no dots in front,
    only word characters (any script), `-`, `_` and `.`; "file" when nothing is left."""
    name = unicodedata.normalize("NFC", client_name or "")
    name = PurePosixPath(name.replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = re.sub(r"[^\w.-]+", "_", stem, flags=re.UNICODE)
    stem = re.sub(r"[._-]{2,}", "_", stem).strip("._-")
    return stem[:MAX_STEM_CHARS].rstrip("._-") or "file"


def _suffix_hint(client_name: str | None) -> str:
    name = PurePosixPath((client_name or "").replace("\\", "/")).name
    return PurePosixPath(name).suffix.lower()


@dataclass(frozen=True)
class SavedFile:
    upload_id: str
    name: str  # the client's file name, directories stripped (shown back, never used as a path)
    stored_as: str  # the safe name inside the job's folder
    path: Path
    media_type: str
    bytes: int


def save_upload(
    stream: BinaryIO,
    client_name: str | None,
    folder: Path,
    index: int,
    upload_id: str,
    max_bytes: int,
) -> SavedFile:
    """Stream one upload into `folder` under a safe name; TooLarge / UnsupportedType otherwise
    (the part file is removed either way)."""
    part = folder / f".part-{index}"
    decoder = codecs.getincrementaldecoder("utf-8")()
    text = True
    head = b""
    size = 0
    try:
        with part.open("xb") as out:
            while chunk := stream.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(
                        f"{_shown(client_name)} is larger than the upload limit of "
                        f"{max_bytes:,} bytes"
                    )
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                if text:
                    try:
                        decoder.decode(chunk)
                        text = b"\x00" not in chunk
                    except UnicodeDecodeError:
                        text = False
                out.write(chunk)
        if text:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                text = False
        kind = sniff(head, part, utf8_text=text)
        if kind is None:
            raise UnsupportedType(
                f"{_shown(client_name)} is not a file type Heron indexes ({ACCEPTED}); "
                "the type is read from the content, not the name"
            )
        if kind == TEXT and _suffix_hint(client_name) in {".md", ".markdown"}:
            kind = MARKDOWN
        stored_as = f"{index:03d}-{safe_stem(client_name)}{kind.suffix}"
        target = folder / stored_as
        if target.resolve().parent != folder.resolve():  # cannot happen: a safe stem
            raise UnsupportedType(f"{_shown(client_name)} has a name that cannot be stored")
        part.rename(target)
    finally:
        part.unlink(missing_ok=True)
    name = PurePosixPath((client_name or "").replace("\\", "/")).name or stored_as
    return SavedFile(upload_id, name, stored_as, target, kind.media_type, size)


def _shown(client_name: str | None) -> str:
    name = PurePosixPath((client_name or "").replace("\\", "/")).name
    return repr(name[:100]) if name else "the uploaded file"
