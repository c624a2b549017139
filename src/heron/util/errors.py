"""The base of every error a user can cause and fix. This module imports nothing of Heron's.

Each subsystem subclasses `HeronError` with a stable `code` (what scripts and API clients match
on) and the HTTP `status` an API answers it with; interfaces render any `HeronError` the same
way: the CLI as one line, the REST API as `{"error": {"code", "message"}}` with that status.
Anything else that escapes is a bug, shown as one.
"""

from __future__ import annotations

from typing import ClassVar


class HeronError(Exception):
    """A failure the user can understand and fix; its message says how."""

    code: ClassVar[str] = "heron_error"
    status: ClassVar[int] = 400


__all__ = ["HeronError"]
