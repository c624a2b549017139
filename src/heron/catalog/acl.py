"""Who may see a unit: ACL labels given to sources by rule, and the filter that enforces them.

A rule gives every file at or below a folder one or more labels (the `acl_rules` setting):
``"~/Finance=finance"``, ``"/srv/share/board=board,finance"``. A unit carries the labels of
every rule its source's path falls under (stored padded, " board finance ", in the `acl`
column); a unit no rule covers carries none and is visible to everyone. A caller who may see
only some labels (an API key's) gets `visible_filter(labels)` added to every search, count and
listing, so the vector and keyword searches themselves never return what it may not see.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from heron.store.filters import Field, Filter
from heron.util.errors import HeronError
from heron.util.paths import stored_text

_LABEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class AclError(HeronError, ValueError):
    """An ACL rule or label cannot be used as written."""

    code = "bad_acl"
    status = 400


@dataclass(frozen=True)
class AclRule:
    folder: str  # as the catalog spells paths (absolute, no trailing separator)
    labels: tuple[str, ...]

    def covers(self, path: str) -> bool:
        return path == self.folder or path.startswith(self.folder.rstrip(os.sep) + os.sep)


def check_label(raw: str) -> str:
    """A label as stored (lower case), or AclError."""
    label = raw.strip().lower()
    if not _LABEL.fullmatch(label):
        raise AclError(
            f"ACL label {raw!r} must be 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return label


def parse_rules(rules: Iterable[str]) -> list[AclRule]:
    """`FOLDER=label[,label...]` strings as rules; AclError names the bad one."""
    parsed = []
    for rule in rules:
        folder, sep, labels = rule.rpartition("=")
        if not sep or not folder.strip() or not labels.strip():
            raise AclError(f"ACL rule {rule!r} must read FOLDER=label[,label...]")
        path = stored_text(os.path.normpath(os.path.abspath(os.path.expanduser(folder.strip()))))
        parsed.append(AclRule(path, tuple(sorted({check_label(x) for x in labels.split(",")}))))
    return parsed


def labels_for(path: str, rules: Sequence[AclRule]) -> tuple[str, ...]:
    """Every label of every rule covering `path` (as the catalog spells it), sorted."""
    return tuple(sorted({label for rule in rules if rule.covers(path) for label in rule.labels}))


def acl_column(labels: Iterable[str]) -> str:
    """The `acl` column for these labels: " a b ", or "" for none (visible to everyone)."""
    ordered = sorted(set(labels))
    return f" {' '.join(ordered)} " if ordered else ""


def visible_filter(labels: Sequence[str]) -> Filter:
    """The units a caller holding `labels` may see: those without labels, and those sharing
    one with the caller."""
    visible: Filter = Field("acl") == ""
    for label in sorted({check_label(x) for x in labels}):
        visible = visible | Field("acl").contains(f" {label} ")
    return visible


__all__ = [
    "AclError",
    "AclRule",
    "acl_column",
    "check_label",
    "labels_for",
    "parse_rules",
    "visible_filter",
]
