"""The failures a user can cause and fix: interfaces show these as one clear message.

Every one is a `heron.util.errors.HeronError` (a stable `code` and an HTTP `status`); this
module is where interfaces take them from.
"""

from __future__ import annotations

from heron.util.errors import HeronError

USER_ERRORS: tuple[type[Exception], ...] = (HeronError,)

__all__ = ["USER_ERRORS", "HeronError"]
