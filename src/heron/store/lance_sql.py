"""Rendering the Filter AST as Lance (DataFusion) SQL: the Lance backend's own translation.

Values are never pasted: each literal is rendered here (quoting, escaping, range checks) and
field names are checked against the columns first (`heron.store.filters.column_type`), so user
input cannot inject SQL. Another backend (Milvus, Qdrant) renders the same AST in its module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from heron.store.filters import (
    _COMPARE_OPS,
    _INT_RANGES,
    And,
    ColumnType,
    Compare,
    Contains,
    Filter,
    FilterError,
    In,
    IsNull,
    Not,
    Or,
    Prefix,
    Value,
    _to_utc,
    _type_error,
)
from heron.store.filters import column_type as _column_type

__all__ = ["to_lance_sql"]


def to_lance_sql(flt: Filter, columns: Mapping[str, ColumnType]) -> str:
    """Render ``flt`` as a Lance (DataFusion) SQL predicate over ``columns``.

    Raises FilterError for an unknown field, a vector field, or a value whose type does not
    fit its column.
    """
    if not isinstance(flt, Filter):
        raise FilterError(f"expected a Filter, got {type(flt).__name__}")
    return _sql(flt, columns)


def _sql(flt: Filter, columns: Mapping[str, ColumnType]) -> str:
    match flt:
        case And(left, right):
            return f"({_sql(left, columns)} AND {_sql(right, columns)})"
        case Or(left, right):
            return f"({_sql(left, columns)} OR {_sql(right, columns)})"
        case Not(operand):
            return f"(NOT {_sql(operand, columns)})"
        case IsNull(field):
            return f"({_ident(field, columns)} IS NULL)"
        case Contains(field, substring):
            if _column_type(field, columns) != "string":
                raise FilterError(f"contains() needs a string field; {field!r} is not one")
            return f"contains({_ident(field, columns)}, {_sql_string(substring)})"
        case Prefix(field, prefix):
            if _column_type(field, columns) != "string":
                raise FilterError(f"startswith() needs a string field; {field!r} is not one")
            return f"starts_with({_ident(field, columns)}, {_sql_string(prefix)})"
        case Compare(field, op, value):
            return _compare_sql(field, op, value, columns)
        case In(field, values):
            return _in_sql(field, values, columns)
    raise FilterError(f"unsupported filter node {type(flt).__name__}")


def _ident(field: str, columns: Mapping[str, ColumnType]) -> str:
    _column_type(field, columns)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
        raise FilterError(f"field name {field!r} is not a plain identifier")
    return f"`{field}`"


def _compare_sql(field: str, op: str, value: Value, columns: Mapping[str, ColumnType]) -> str:
    if op not in _COMPARE_OPS:
        raise FilterError(f"unsupported comparison operator {op!r}")
    column, literal = _operand_sql(field, value, columns)
    return f"({column} {op} {literal})"


def _in_sql(field: str, values: tuple[Value, ...], columns: Mapping[str, ColumnType]) -> str:
    if not values:
        raise FilterError(f"'in' on {field!r} needs at least one value")
    rendered = [_operand_sql(field, v, columns) for v in values]
    if len({column for column, _ in rendered}) == 1:
        return f"({rendered[0][0]} IN ({', '.join(lit for _, lit in rendered)}))"
    # Values that need different column casts (e.g. 3 and 2.5 on an int column) become an OR.
    return "(" + " OR ".join(f"({c} = {lit})" for c, lit in rendered) + ")"


def _operand_sql(field: str, value: Value, columns: Mapping[str, ColumnType]) -> tuple[str, str]:
    """Return (column expression, literal) for comparing ``field`` with ``value``."""
    ctype = _column_type(field, columns)
    ident = _ident(field, columns)
    if ctype == "string":
        if not isinstance(value, str):
            raise _type_error(field, ctype, value)
        return ident, _sql_string(value)
    if ctype == "bool":
        if not isinstance(value, bool):
            raise _type_error(field, ctype, value)
        return ident, "TRUE" if value else "FALSE"
    if ctype == "timestamp":
        if not isinstance(value, datetime):
            raise _type_error(field, ctype, value)
        return ident, _sql_timestamp(value)
    if ctype in _INT_RANGES or ctype == "float64":
        return _numeric_operand(field, ident, ctype, value)
    raise FilterError(f"field {field!r} has unsupported type {ctype!r}")


def _numeric_operand(field: str, ident: str, ctype: str, value: Value) -> tuple[str, str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(field, ctype, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"filter values must be finite numbers, not {value!r}")
        if ctype != "float64" and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        else:
            return (ident if ctype == "float64" else f"CAST({ident} AS DOUBLE)"), repr(value)
    lo, hi = _INT_RANGES.get(ctype, _INT_RANGES["int64"])
    if not _INT_RANGES["int64"][0] <= value <= _INT_RANGES["int64"][1]:
        raise FilterError(f"integer {value} is out of the 64-bit range for field {field!r}")
    if ctype == "float64":
        return ident, f"{value}.0"
    if not lo <= value <= hi:
        ident = f"CAST({ident} AS BIGINT)"
    # The SQL parser reads "-9223372036854775808" as minus a literal that overflows int64.
    if value == _INT_RANGES["int64"][0]:
        return ident, f"({value + 1} - 1)"
    return ident, str(value)


def _sql_string(value: str) -> str:
    if "\x00" in value:
        raise FilterError("filter strings may not contain NUL characters")
    # Lance's SQL dialect has no backslash escapes inside '...': doubling the quote is complete.
    return "'" + value.replace("'", "''") + "'"


def _sql_timestamp(value: datetime) -> str:
    utc = _to_utc(value)
    return f"TIMESTAMP '{utc.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'"
