"""Mixed queries: several texts and pictures with weights and negatives, as rclip and Marqo do.

    "a beach" + 0.5*holiday.jpg - "people"

Each part is a quoted text or a picture (a path; quote it when it holds spaces or `+`), with an
optional weight `W*` in front, joined by `+` or `-` (a minus negates the part's weight). The
query vector is the weighted sum of the parts' unit vectors, normalised: a negative part pushes
results away from what it shows or says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from heron.search.engine import QueryError

__all__ = ["MixedPart", "MixedSyntaxError", "parse_mixed"]


class MixedSyntaxError(QueryError):
    """The mixed query cannot be parsed; the message points at the bad part."""


@dataclass(frozen=True)
class MixedPart:
    weight: float
    text: str | None = None
    image: Path | None = None


_PART = re.compile(
    r"""\s*(?P<sign>[+-])?\s*
        (?:(?P<weight>\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?
        (?:"(?P<text>(?:[^"\\]|\\.)*)"|'(?P<path>[^']*)'|(?P<bare>[^\s+"'*]+))\s*""",
    re.VERBOSE,
)


def parse_mixed(expr: str) -> list[MixedPart]:
    """The parts of a mixed query; a text is quoted ("..."), anything else is a picture path."""
    parts: list[MixedPart] = []
    position = 0
    while position < len(expr.rstrip()):
        match = _PART.match(expr, position)
        if match is None or match.end() == position:
            raise MixedSyntaxError(
                f"cannot read the mixed query from character {position + 1}: "
                f'{expr[position : position + 20]!r}; write parts like "text" + 0.5*photo.jpg'
            )
        sign = match.group("sign")
        if parts and sign is None:
            raise MixedSyntaxError(
                f"parts must be joined by + or - (at character {match.start() + 1})"
            )
        weight = float(match.group("weight") or 1.0) * (-1.0 if sign == "-" else 1.0)
        text = match.group("text")
        if text is not None:
            text = re.sub(r"\\(.)", r"\1", text).strip()
            if not text:
                raise MixedSyntaxError(f"an empty text part at character {match.start() + 1}")
            parts.append(MixedPart(weight, text=text))
        else:
            path = match.group("path") if match.group("path") is not None else match.group("bare")
            parts.append(MixedPart(weight, image=Path(path).expanduser()))
        position = match.end()
    if not parts:
        raise MixedSyntaxError("the mixed query is empty")
    if all(part.weight <= 0 for part in parts):
        raise MixedSyntaxError("a mixed query needs at least one part with a positive weight")
    return parts
