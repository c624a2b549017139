"""The Filter AST: a small typed predicate language every store backend translates.

Build filters in Python::

    (Field("kind") == "image") & (Field("width") >= 800) & ~Field("format").isin(["gif"])

or parse the CLI's ``--where`` syntax with :func:`parse_filter`::

    parse_filter("kind=image, width>=800, format in jpeg,png")

Values are never pasted into a backend's expression string: each backend renders the AST in
its own module (Lance: :mod:`heron.store.lance_sql`), after the column checks here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Literal, TypeAlias

from heron.util.errors import HeronError

Value: TypeAlias = str | int | float | bool | datetime
CompareOp: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]
ColumnType: TypeAlias = Literal[
    "string", "int32", "int64", "float64", "bool", "timestamp", "vector"
]

_COMPARE_OPS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=")
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_PAREN_HINT = "wrap each comparison in parentheses: (Field('a') == 1) & (Field('b') > 2)"


class FilterError(HeronError, ValueError):
    """A filter is malformed, names an unknown field, or has a value of the wrong type."""

    code = "bad_filter"
    status = 400


class Filter:
    """Base of every filter node; combine nodes with ``&``, ``|`` and ``~``."""

    __slots__ = ()

    def __and__(self, other: Filter) -> Filter:
        return And(self, _as_filter(other))

    def __or__(self, other: Filter) -> Filter:
        return Or(self, _as_filter(other))

    def __invert__(self) -> Filter:
        return Not(self)

    def __bool__(self) -> bool:
        # Catches `a and b`, `not a` and chained comparisons like `1 < Field("w") < 5`.
        raise TypeError(f"a Filter has no truth value; use &, |, ~ instead ({_PAREN_HINT})")

    def fields(self) -> Iterator[str]:
        """Yield the field names this filter refers to."""
        raise NotImplementedError


def _as_filter(other: object) -> Filter:
    if not isinstance(other, Filter):
        raise TypeError(f"cannot combine a Filter with {type(other).__name__}; {_PAREN_HINT}")
    return other


def _check_value(value: object) -> Value:
    if isinstance(value, bool | int | str | datetime):
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a numpy scalar
        value = value.item()
        if isinstance(value, bool | int):
            return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"filter values must be finite numbers, not {value!r}")
        return value
    raise FilterError(
        f"unsupported filter value {value!r} ({type(value).__name__}); "
        "use str, int, float, bool or datetime"
    )


@dataclass(frozen=True, eq=False)
class Field:
    """A column reference; comparing it builds a filter node."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise FilterError("a field name must be a non-empty string")

    def _cmp(self, op: CompareOp, value: object) -> Compare:
        return Compare(self.name, op, _check_value(value))

    def __eq__(self, value: object) -> Compare:  # type: ignore[override]
        return self._cmp("=", value)

    def __ne__(self, value: object) -> Compare:  # type: ignore[override]
        return self._cmp("!=", value)

    def __lt__(self, value: object) -> Compare:
        return self._cmp("<", value)

    def __le__(self, value: object) -> Compare:
        return self._cmp("<=", value)

    def __gt__(self, value: object) -> Compare:
        return self._cmp(">", value)

    def __ge__(self, value: object) -> Compare:
        return self._cmp(">=", value)

    def __hash__(self) -> int:
        return hash(("Field", self.name))

    def __bool__(self) -> bool:
        raise TypeError(f"a Field has no truth value; {_PAREN_HINT}")

    def __and__(self, other: object) -> Filter:
        raise TypeError(f"cannot combine a bare Field; {_PAREN_HINT}")

    __rand__ = __or__ = __ror__ = __and__

    def __invert__(self) -> Filter:
        raise TypeError(f"cannot negate a bare Field; {_PAREN_HINT}")

    def isin(self, values: Iterable[object]) -> In:
        if isinstance(values, str | bytes):
            raise FilterError("isin() takes a list of values, not a single string")
        checked = tuple(_check_value(v) for v in values)
        if not checked:
            raise FilterError(f"isin() on {self.name!r} needs at least one value")
        return In(self.name, checked)

    def contains(self, substring: str) -> Contains:
        if not isinstance(substring, str):
            raise FilterError("contains() takes a string")
        return Contains(self.name, substring)

    def startswith(self, prefix: str) -> Prefix:
        if not isinstance(prefix, str):
            raise FilterError("startswith() takes a string")
        return Prefix(self.name, prefix)

    def is_null(self) -> IsNull:
        return IsNull(self.name)


@dataclass(frozen=True)
class Compare(Filter):
    field: str
    op: CompareOp
    value: Value

    def fields(self) -> Iterator[str]:
        yield self.field


@dataclass(frozen=True)
class In(Filter):
    field: str
    values: tuple[Value, ...]

    def fields(self) -> Iterator[str]:
        yield self.field


@dataclass(frozen=True)
class Contains(Filter):
    """Case-sensitive substring match on a string field."""

    field: str
    substring: str

    def fields(self) -> Iterator[str]:
        yield self.field


@dataclass(frozen=True)
class Prefix(Filter):
    """Case-sensitive prefix match on a string field (a folder and everything below it)."""

    field: str
    prefix: str

    def fields(self) -> Iterator[str]:
        yield self.field


@dataclass(frozen=True)
class IsNull(Filter):
    field: str

    def fields(self) -> Iterator[str]:
        yield self.field


@dataclass(frozen=True)
class _Binary(Filter):
    left: Filter
    right: Filter

    def fields(self) -> Iterator[str]:
        yield from self.left.fields()
        yield from self.right.fields()


@dataclass(frozen=True)
class And(_Binary):
    pass


@dataclass(frozen=True)
class Or(_Binary):
    pass


@dataclass(frozen=True)
class Not(Filter):
    operand: Filter

    def fields(self) -> Iterator[str]:
        yield from self.operand.fields()


def all_of(filters: Iterable[Filter]) -> Filter | None:
    """AND together any number of filters; None when there are none."""
    result: Filter | None = None
    for f in filters:
        result = f if result is None else result & f
    return result


# --------------------------------------------------------------------------- column checks
# What every backend checks the same way; each backend renders filters in its own module
# (Lance: heron.store.lance_sql).


def column_type(field: str, columns: Mapping[str, ColumnType]) -> ColumnType:
    """The type of a filterable column, or FilterError naming the filterable ones."""
    return _column_type(field, columns)


def check_value(field: str, ctype: ColumnType, value: Value) -> None:
    """FilterError unless `value` can be compared with a `ctype` column."""
    fits = {
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "timestamp": isinstance(value, datetime),
    }.get(ctype)
    if fits is None:  # numeric columns
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    if not fits:
        raise _type_error(field, ctype, value)


def _column_type(field: str, columns: Mapping[str, ColumnType]) -> ColumnType:
    ctype = columns.get(field)
    if ctype is None:
        known = ", ".join(sorted(n for n, t in columns.items() if t != "vector"))
        raise FilterError(f"unknown field {field!r}; filterable fields: {known}")
    if ctype == "vector":
        raise FilterError(f"field {field!r} is a vector and cannot be filtered on")
    return ctype


def _type_error(field: str, ctype: str, value: object) -> FilterError:
    return FilterError(
        f"field {field!r} holds {ctype} values; {value!r} ({type(value).__name__}) does not fit"
    )


def _to_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC, like every timestamp the store writes."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- CLI syntax

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<op>==|!=|<=|>=|=|<|>|~)
  | (?P<comma>,)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<word>[^\s,()=!<>~"']+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if m is None:
            raise FilterError(f"unexpected character {expr[pos]!r} at position {pos} in {expr!r}")
        kind = m.lastgroup or ""
        if kind == "quoted":
            tokens.append(_Token("value", _unquote(m.group()), pos))
        elif kind == "word":
            tokens.append(_Token("word", m.group(), pos))
        elif kind != "ws":
            tokens.append(_Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def _unquote(text: str) -> str:
    return re.sub(r"\\([\\\"'])", r"\1", text[1:-1])


class _Parser:
    """expr := clause ((',' | AND) clause)*
    clause := FIELD op VALUE | FIELD [NOT] IN list
    list := '(' VALUE (',' VALUE)* ')' | VALUE (',' VALUE)*   -- a bare list stops at a clause
    """

    def __init__(self, expr: str, columns: Mapping[str, ColumnType]) -> None:
        self.expr = expr
        self.columns = columns
        self.tokens = _tokenize(expr)
        self.i = 0

    def error(self, message: str, token: _Token | None = None) -> FilterError:
        where = f" at position {token.pos}" if token else " at the end"
        return FilterError(f"{message}{where} in --where {self.expr!r}")

    def peek(self, offset: int = 0) -> _Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of expression")
        self.i += 1
        return tok

    def parse(self) -> Filter:
        if not self.tokens:
            raise FilterError("empty --where expression")
        clauses = [self.clause()]
        while (tok := self.peek()) is not None:
            if tok.kind == "comma" or _is_keyword(tok, "and"):
                self.take()
                clauses.append(self.clause())
            elif _is_keyword(tok, "or"):
                raise self.error("OR is not supported; use 'FIELD in A,B' for alternatives", tok)
            else:
                raise self.error(f"expected ',' or AND before {tok.text!r}", tok)
        result = all_of(clauses)
        assert result is not None
        return result

    def clause(self) -> Filter:
        tok = self.take()
        if tok.kind != "word":
            raise self.error(f"expected a field name, got {tok.text!r}", tok)
        field = tok.text
        ctype = self.field_type(field, tok)
        op = self.take()
        if op.kind == "op":
            return self.comparison(field, ctype, op)
        negate = _is_keyword(op, "not")
        if negate:
            op = self.take()
        if not _is_keyword(op, "in"):
            raise self.error(f"expected an operator (= != < <= > >= ~ in) after {field!r}", op)
        values = tuple(_convert(field, ctype, v) for v in self.value_list())
        node = In(field, values)
        return Not(node) if negate else node

    def comparison(self, field: str, ctype: ColumnType, op: _Token) -> Filter:
        value_tok = self.take()
        if value_tok.kind not in ("word", "value"):
            raise self.error(f"expected a value after {op.text!r}", value_tok)
        if op.text == "~":
            if ctype != "string":
                raise self.error(f"'~' (contains) needs a text field; {field!r} is {ctype}", op)
            return Contains(field, value_tok.text)
        sym = "=" if op.text == "==" else op.text
        return Compare(field, sym, _convert(field, ctype, value_tok.text))  # type: ignore[arg-type]

    def value_list(self) -> list[str]:
        if (tok := self.peek()) is not None and tok.kind == "lparen":
            self.take()
            values = [self.value()]
            while (tok := self.take()).kind == "comma":
                values.append(self.value())
            if tok.kind != "rparen":
                raise self.error("expected ',' or ')' in the value list", tok)
            return values
        values = [self.value()]
        while self._list_continues():
            self.take()
            values.append(self.value())
        return values

    def _list_continues(self) -> bool:
        comma, after, then = self.peek(), self.peek(1), self.peek(2)
        if comma is None or comma.kind != "comma" or after is None:
            return False
        # "a in x,y,b=1": the comma before "b=1" starts a new clause, not another value.
        starts_clause = (
            after.kind == "word"
            and then is not None
            and (then.kind == "op" or _is_keyword(then, "in") or _is_keyword(then, "not"))
        )
        return not starts_clause

    def value(self) -> str:
        tok = self.take()
        if tok.kind not in ("word", "value"):
            raise self.error(f"expected a value, got {tok.text!r}", tok)
        return tok.text

    def field_type(self, field: str, tok: _Token) -> ColumnType:
        ctype = self.columns.get(field)
        if ctype is None or ctype == "vector":
            known = ", ".join(sorted(n for n, t in self.columns.items() if t != "vector"))
            raise self.error(f"unknown field {field!r} (filterable: {known})", tok)
        return ctype


def _is_keyword(tok: _Token, word: str) -> bool:
    return tok.kind == "word" and tok.text.lower() == word


def _convert(field: str, ctype: ColumnType, text: str) -> Value:
    try:
        if ctype in ("int32", "int64"):
            return int(text)
        if ctype == "float64":
            return _check_value(float(text))  # type: ignore[return-value]
        if ctype == "bool":
            return _parse_bool(text)
        if ctype == "timestamp":
            return _parse_datetime(text)
    except ValueError as exc:
        raise FilterError(f"{text!r} is not a valid {ctype} value for {field!r}: {exc}") from None
    return text


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ValueError("use true or false")


def _parse_datetime(text: str) -> datetime:
    """ISO 8601 date or date-time; no zone means UTC."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    return _to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def parse_filter(expr: str, columns: Mapping[str, ColumnType] | None = None) -> Filter:
    """Parse the CLI's ``--where`` syntax into a Filter.

    Clauses are ``FIELD OP VALUE`` with OP one of ``= == != < <= > >=``, ``FIELD ~ TEXT``
    (contains), ``FIELD in A,B,C`` or ``FIELD not in (A, B)``, joined by commas or AND.
    Quote values holding spaces, commas or operators: ``path~"My Photos"``. Values are
    converted to the field's type (``width>=800`` compares numbers; timestamps take ISO dates,
    UTC unless a zone is given). Unknown fields and malformed input raise FilterError.
    """
    if columns is None:
        from heron.store.base import UNIT_COLUMNS

        columns = UNIT_COLUMNS
    if not isinstance(expr, str):
        raise FilterError("a --where expression must be a string")
    return _Parser(expr, columns).parse()


__all__ = [
    "And",
    "ColumnType",
    "Compare",
    "Contains",
    "Field",
    "Filter",
    "FilterError",
    "In",
    "IsNull",
    "Not",
    "Or",
    "Prefix",
    "Value",
    "all_of",
    "check_value",
    "column_type",
    "parse_filter",
]
