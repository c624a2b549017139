"""Evaluating the Filter AST over Arrow columns in memory: the ANN mirror's translation.

The mirror (:mod:`heron.store.ann_mirror`) keeps a unit table's filterable columns as Arrow
arrays and needs, per query, the mask of rows a filter keeps. The semantics are SQL's, as in
:mod:`heron.store.lance_sql`: a comparison with NULL is unknown, unknown rows are not kept,
and NOT unknown stays unknown; so both translations keep exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from heron.store.filters import (
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
    column_type,
)

__all__ = ["filter_mask"]

_COMPARE = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}
_TIMESTAMP = pa.timestamp("us", tz="UTC")


def filter_mask(flt: Filter, table: pa.Table, columns: Mapping[str, ColumnType]) -> np.ndarray:
    """A boolean array with one entry per row of ``table``: True where ``flt`` holds.

    ``columns`` are the column types the filter is checked against (an unknown field or a
    value of the wrong type raises FilterError, as every backend's translation does).
    """
    if not isinstance(flt, Filter):
        raise FilterError(f"expected a Filter, got {type(flt).__name__}")
    result = _eval(flt, table, columns)
    return pc.fill_null(result, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _eval(flt: Filter, table: pa.Table, columns: Mapping[str, ColumnType]) -> pa.ChunkedArray:
    match flt:
        case And(left, right):
            return pc.and_kleene(_eval(left, table, columns), _eval(right, table, columns))
        case Or(left, right):
            return pc.or_kleene(_eval(left, table, columns), _eval(right, table, columns))
        case Not(operand):
            return pc.invert(_eval(operand, table, columns))
        case IsNull(field):
            return pc.is_null(_column(field, table, columns))
        case Contains(field, substring):
            _string_field(field, columns, "contains()")
            return pc.match_substring(_column(field, table, columns), substring)
        case Prefix(field, prefix):
            _string_field(field, columns, "startswith()")
            return pc.starts_with(_column(field, table, columns), prefix)
        case Compare(field, op, value):
            if op not in _COMPARE:
                raise FilterError(f"unsupported comparison operator {op!r}")
            scalar = _scalar(field, value, columns)
            return _COMPARE[op](_column(field, table, columns), scalar)
        case In(field, values):
            if not values:
                raise FilterError(f"'in' on {field!r} needs at least one value")
            column = _column(field, table, columns)
            result = None
            for value in values:  # an OR of equalities: values may need different casts
                hit = pc.equal(column, _scalar(field, value, columns))
                result = hit if result is None else pc.or_kleene(result, hit)
            return result
    raise FilterError(f"unsupported filter node {type(flt).__name__}")


def _column(field: str, table: pa.Table, columns: Mapping[str, ColumnType]) -> pa.ChunkedArray:
    if column_type(field, columns) == "vector":
        raise FilterError(f"cannot filter on the vector field {field!r}")
    if field not in table.column_names:
        raise FilterError(f"field {field!r} is not kept for filtering")
    return table[field]


def _string_field(field: str, columns: Mapping[str, ColumnType], what: str) -> None:
    if column_type(field, columns) != "string":
        raise FilterError(f"{what} needs a string field; {field!r} is not one")


def _scalar(field: str, value: Value, columns: Mapping[str, ColumnType]) -> pa.Scalar:
    ctype = column_type(field, columns)
    if ctype == "string":
        if not isinstance(value, str):
            raise _type_error(field, ctype, value)
        if "\x00" in value:
            raise FilterError("filter strings may not contain NUL characters")
        return pa.scalar(value, pa.string())
    if ctype == "bool":
        if not isinstance(value, bool):
            raise _type_error(field, ctype, value)
        return pa.scalar(value)
    if ctype == "timestamp":
        if not isinstance(value, datetime):
            raise _type_error(field, ctype, value)
        return pa.scalar(_to_utc(value), _TIMESTAMP)
    if ctype in ("int32", "int64", "float64"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(field, ctype, value)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise FilterError(f"integer {value} is out of the 64-bit range for field {field!r}")
        # Compared as a double when it is one, so 2.5 against an int column means 2.5.
        return pa.scalar(float(value)) if isinstance(value, float) else pa.scalar(value, pa.int64())
    raise FilterError(f"field {field!r} has unsupported type {ctype!r}")
