"""The query language the CLI, the Python API and (later) the REST API and web page share.

    kind:page,slide format:pdf width>=800 modified>=2024-01 path:~/Papers -kind:frame
    "exact phrase" free words

- free words are what the query means (the vector search) and what the keyword search looks
  for (every word, any order);
- a "quoted phrase" must appear as written in a unit's text (file name, page, slide, passage,
  caption, OCR) to count in the keyword list, and is part of the meaning too;
- `field:value` and `field<op>value` (op: = != < <= > >=) filter inside the search; a comma
  means any of (`kind:page,slide`); a leading `-` excludes (`-kind:frame`);
- `\\` before a quote or a colon keeps it literal; anything else is a word.

A query is parsed into free text, phrases and a `heron.store.filters` AST, never pasted into a
backend's expression, and every error names the bad token and where it starts, so a caller can
point at it (`QuerySyntaxError.position`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from heron.extract.base import UNIT_KINDS
from heron.search.engine import QueryError
from heron.store.filters import Field, Filter, Value, all_of
from heron.understand.categories import DEFAULT_CATEGORIES
from heron.understand.colours import COLOUR_NAMES
from heron.understand.tags import TagError, normalize_tag
from heron.util.paths import stored_text

__all__ = ["FIELDS", "ParsedQuery", "QuerySyntaxError", "parse_query"]


class QuerySyntaxError(QueryError):
    """The query cannot be parsed; `position` is where the bad token starts."""

    def __init__(self, message: str, query: str, position: int) -> None:
        pointer = f"\n  {query}\n  {' ' * _width(query[:position])}^"
        super().__init__(f"{message} (at character {position + 1}){pointer}")
        self.position = position
        self.detail = message


@dataclass(frozen=True)
class ParsedQuery:
    text: str = ""  # free words and phrases, as typed: what the query means
    words: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    filter: Filter | None = None

    @property
    def has_text(self) -> bool:
        return bool(self.words or self.phrases)


@dataclass(frozen=True)
class _FieldSpec:
    column: str
    kind: str  # "keyword" (exact, comma = any of), "number", "time", "path"
    ops: frozenset[str]
    help: str


_EQUALITY = frozenset({":", "=", "!="})
_ORDERED = frozenset({":", "=", "!=", "<", "<=", ">", ">="})
FIELDS: dict[str, _FieldSpec] = {
    "kind": _FieldSpec("kind", "kind", _EQUALITY, f"one of {', '.join(UNIT_KINDS)}"),
    "format": _FieldSpec("format", "keyword", _EQUALITY, "jpeg, png, pdf, pptx, mp4 ..."),
    "model": _FieldSpec("model", "keyword", _EQUALITY, "a model stamp, e.g. heron-lite@2.0"),
    "path": _FieldSpec("path", "path", frozenset({":", "="}), "a folder or file"),
    "width": _FieldSpec("width", "number", _ORDERED, "pixels"),
    "height": _FieldSpec("height", "number", _ORDERED, "pixels"),
    "bytes": _FieldSpec("bytes", "number", _ORDERED, "the source file's size"),
    "modified": _FieldSpec("modified_at", "time", _ORDERED, "a date: 2024, 2024-05, 2024-05-17"),
    "colour": _FieldSpec("colours", "colour", _EQUALITY, "red, 红, blue, 蓝 ... (any of a,b)"),
    "color": _FieldSpec("colours", "colour", _EQUALITY, "red, 红, blue, 蓝 ..."),
    "scheme": _FieldSpec("scheme", "scheme", _EQUALITY, "warm, cool or neutral"),
    "category": _FieldSpec("category", "category", _EQUALITY, "animal, 动物, food, chart ..."),
    "brightness": _FieldSpec("brightness", "fraction", _ORDERED, "0 (dark) .. 1 (bright)"),
    "saturation": _FieldSpec("saturation", "fraction", _ORDERED, "0 (grey) .. 1 (vivid)"),
    "indexed": _FieldSpec("indexed_at", "time", _ORDERED, "a date"),
    "taken": _FieldSpec("taken_at", "time", _ORDERED, "a date (EXIF): 2024, 2024-05 ..."),
    "camera": _FieldSpec("camera", "text", frozenset({":", "="}), "words of its make or model"),
    "lat": _FieldSpec("latitude", "degrees", _ORDERED, "degrees north, -90 .. 90"),
    "lon": _FieldSpec("longitude", "degrees", _ORDERED, "degrees east, -180 .. 180"),
    "tag": _FieldSpec("tags", "tag", _EQUALITY, "a tag given with `heron tag add` (any of a,b)"),
}

_COLOUR_ALIASES = {
    **{name: name for name in COLOUR_NAMES},
    **{chinese: name for name, chinese in COLOUR_NAMES.items()},
    "gray": "grey",
    "violet": "purple",
}

_CATEGORY_ALIASES = {c.chinese: c.name for c in DEFAULT_CATEGORIES} | {"其他": "other"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<phrase>-?"(?:[^"\\]|\\.)*"?)
  | (?P<field>-?[A-Za-z_]+(?:>=|<=|!=|:|=|<|>)(?:"(?:[^"\\]|\\.)*"?|\S*))
  | (?P<word>(?:[^\s"\\]|\\.)+|\\)
    """,
    re.VERBOSE,
)
_FIELD = re.compile(r"(-?)([A-Za-z_]+)(>=|<=|!=|:|=|<|>)(.*)", re.DOTALL)


def parse_query(query: str, home: Callable[[str], str] = os.path.expanduser) -> ParsedQuery:
    """Parse `query`; raise QuerySyntaxError (a QueryError) naming the bad token."""
    if not isinstance(query, str):
        raise TypeError("a query is a string")
    words: list[str] = []
    phrases: list[str] = []
    meaning: list[str] = []
    filters: list[Filter] = []
    for match in _TOKEN.finditer(query):
        kind, token, at = match.lastgroup, match.group(), match.start()
        if kind == "space":
            continue
        if kind == "phrase":
            phrase = _phrase(token, query, at)
            if phrase:
                phrases.append(phrase)
                meaning.append(phrase)
        elif kind == "field" and not _looks_like_text(token):
            filters.append(_field_filter(token, query, at, home))
        else:  # a word (or text with a colon in it, like a URL)
            word = _unescape(token)
            if not word.strip():  # an escaped space alone ("\ ") is no word
                continue
            if word.startswith("-") and len(word) > 1:
                raise QuerySyntaxError(
                    f"'{word}': a minus excludes a field (-kind:frame); to search for the word "
                    f'itself, quote it: "{word}"',
                    query,
                    at,
                )
            words.append(word)
            meaning.append(word)
    return ParsedQuery(text=" ".join(meaning), words=words, phrases=phrases, filter=all_of(filters))


def _looks_like_text(token: str) -> bool:
    """`https://example.org` or `note:` at the end of a sentence: words, not filters."""
    _, name, op, rest = _FIELD.fullmatch(token).groups()  # type: ignore[union-attr]
    known = name.lower() in FIELDS
    return op == ":" and not known and (rest.startswith("//") or rest == "")


def _phrase(token: str, query: str, at: int) -> str:
    if token.startswith("-"):
        raise QuerySyntaxError("a quoted phrase cannot be excluded (yet)", query, at)
    if len(token) < 2 or not token.endswith('"') or token.endswith('\\"'):
        raise QuerySyntaxError("this quote is never closed", query, at)
    return " ".join(_unescape(token[1:-1]).split())


def _field_filter(token: str, query: str, at: int, home: Callable[[str], str]) -> Filter:
    negated, name, op, raw = _FIELD.fullmatch(token).groups()  # type: ignore[union-attr]
    key = name.lower()
    value_at = at + len(negated) + len(name) + len(op)
    spec = FIELDS.get(key)
    if spec is None:
        known = ", ".join(sorted(FIELDS))
        raise QuerySyntaxError(
            f"unknown field '{name}'; fields are {known} (quote the text to search for it)",
            query,
            at,
        )
    if op not in spec.ops:
        allowed = " ".join(sorted(spec.ops))
        raise QuerySyntaxError(f"'{name}' takes {allowed}, not '{op}'", query, at)
    raw = _phrase(raw, query, value_at) if raw.startswith('"') else _unescape(raw)
    if not raw:
        raise QuerySyntaxError(f"'{name}{op}' needs a value ({spec.help})", query, value_at)
    built = _build(spec, name, op, raw, query, value_at, home)
    return ~built if negated else built


def _build(
    spec: _FieldSpec,
    name: str,
    op: str,
    raw: str,
    query: str,
    at: int,
    home: Callable[[str], str],
) -> Filter:
    column = Field(spec.column)
    if spec.kind == "path":  # the file itself, or a folder and everything below it
        path = stored_text(os.path.normpath(os.path.abspath(home(raw))))
        below = path.rstrip(os.sep) + os.sep
        return (column == path) | column.startswith(below)
    listed = ("kind", "keyword", "colour", "scheme", "category", "tag")
    values = raw.split(",") if spec.kind in listed else [raw]
    if any(not v for v in values):
        raise QuerySyntaxError(f"'{name}' has an empty value in '{raw}'", query, at)
    converted = [_value(spec, name, v, query, at) for v in values]
    if spec.kind == "text":
        return column.contains(converted[0])  # type: ignore[arg-type]
    if spec.kind in ("colour", "tag"):  # a unit has several: any of the ones asked
        matches = [column.contains(f" {value} ") for value in converted]
        found = matches[0]
        for match in matches[1:]:
            found = found | match
        return ~found if op == "!=" else found
    if op in (":", "="):
        return column == converted[0] if len(converted) == 1 else column.isin(converted)
    if op == "!=":
        return ~(column == converted[0]) if len(converted) == 1 else ~column.isin(converted)
    return _compare(column, op, converted[0])


def _value(spec: _FieldSpec, name: str, raw: str, query: str, at: int) -> Value:
    if spec.kind == "kind":
        kind = raw.lower()
        if kind not in UNIT_KINDS:
            raise QuerySyntaxError(f"'{raw}' is not a kind; kinds are {spec.help}", query, at)
        return kind
    if spec.kind == "keyword":
        return raw.lower() if spec.column == "format" else raw
    if spec.kind == "colour":
        colour = _COLOUR_ALIASES.get(raw.lower())
        if colour is None:
            names = ", ".join(COLOUR_NAMES)
            raise QuerySyntaxError(f"'{raw}' is not a colour; colours are {names}", query, at)
        return colour
    if spec.kind == "tag":
        try:
            return normalize_tag(raw)
        except TagError as error:
            raise QuerySyntaxError(str(error), query, at) from None
    if spec.kind == "category":  # any configured name; the Chinese defaults map to theirs
        return _CATEGORY_ALIASES.get(raw, raw.lower())
    if spec.kind == "scheme":
        if raw.lower() not in ("warm", "cool", "neutral"):
            raise QuerySyntaxError(f"'{raw}' is not warm, cool or neutral", query, at)
        return raw.lower()
    if spec.kind == "text":
        return raw.lower()
    if spec.kind == "degrees":
        try:
            return float(raw)
        except ValueError:
            raise QuerySyntaxError(f"'{name}' takes degrees, not '{raw}'", query, at) from None
    if spec.kind == "fraction":
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise QuerySyntaxError(f"'{name}' takes a number from 0 to 1, not '{raw}'", query, at)
        return value
    if spec.kind == "number":
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise QuerySyntaxError(
                f"'{name}' takes a whole number, not '{raw}'", query, at
            ) from None
    return _date(raw, name, query, at)


def _compare(column: Field, op: str, value: Value) -> Filter:
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    return column >= value


def _date(raw: str, name: str, query: str, at: int) -> datetime:
    """2024, 2024-05 or 2024-05-17 (the start of that year, month or day), or an ISO time."""
    try:
        if re.fullmatch(r"\d{4}", raw):
            return datetime(int(raw), 1, 1, tzinfo=UTC)
        if re.fullmatch(r"\d{4}-\d{1,2}", raw):
            year, month = raw.split("-")
            return datetime(int(year), int(month), 1, tzinfo=UTC)
        if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", raw):
            parsed = date(*map(int, raw.split("-")))
            return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise QuerySyntaxError(
            f"'{name}' takes a date like 2024, 2024-05 or 2024-05-17, not '{raw}'", query, at
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _width(text: str) -> int:
    """Terminal columns of `text`, so the caret lands under wide (CJK) characters too."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
