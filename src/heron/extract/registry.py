"""Which extractor reads a file: the built-in ones and add-ons, registered the same way.

The built-in extractors are named here as `module:attribute` references and loaded exactly as
an add-on's are: an installed package adds its own under the `heron.extractors` entry-point group
(`[project.entry-points."heron.extractors"] mine = "my_pkg.extract:extractor"`), or calls
`register(extractor)` itself. An extractor whose module cannot be imported (a missing optional
library) is kept as a reason, so its files are skipped saying why instead of failing the run.

Choosing one for a file trusts its content first: the first extractor (in registration order)
that recognises the bytes takes it, so a PNG named `.jpg` or a PDF named `.dat`-like names
reach the right reader. When none recognises the content, the extractor that claims the file's
suffix takes it and gives the specific reason it cannot read it ("truncated JPEG").
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points

from heron.extract.base import Extractor, Source

ENTRY_POINT_GROUP = "heron.extractors"
BUILTIN: tuple[str, ...] = (
    "heron.extract.images:extractor",
    "heron.extract.pdf:extractor",
    "heron.extract.slides:slides_extractor",
    "heron.extract.documents:docx_extractor",
    "heron.extract.documents:markdown_extractor",
    "heron.extract.documents:text_extractor",
    "heron.extract.video:extractor",
)

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Registry",
    "Unavailable",
    "default_registry",
    "register",
]


@dataclass(frozen=True)
class Unavailable:
    """An extractor that failed to load, and why."""

    reference: str
    reason: str


class Registry:
    def __init__(self) -> None:
        self._extractors: list[Extractor] = []
        self.unavailable: list[Unavailable] = []

    def register(self, extractor: Extractor) -> None:
        """Add an extractor; one registered under a name already taken replaces it."""
        if not isinstance(extractor, Extractor):
            raise TypeError(f"{extractor!r} does not implement heron.extract.base.Extractor")
        self._extractors = [e for e in self._extractors if e.name != extractor.name]
        self._extractors.append(extractor)

    def unregister(self, name: str) -> None:
        self._extractors = [e for e in self._extractors if e.name != name]

    def load(self, reference: str) -> None:
        """Register the extractor a `module:attribute` reference names."""
        module_name, _, attribute = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
            extractor = getattr(module, attribute or "extractor")
        except (ImportError, AttributeError) as exc:
            self.unavailable.append(Unavailable(reference, f"{type(exc).__name__}: {exc}"))
            return
        self.register(extractor)

    @property
    def extractors(self) -> tuple[Extractor, ...]:
        return tuple(self._extractors)

    def names(self) -> list[str]:
        return [e.name for e in self._extractors]

    def suffixes(self) -> frozenset[str]:
        """Every file suffix some extractor reads: what the crawler collects."""
        return frozenset(s for e in self._extractors for s in e.suffixes)

    def for_source(self, source: Source) -> Extractor | None:
        """The extractor for this file: by content first, by suffix when none recognises it."""
        for extractor in self._extractors:
            if extractor.recognises(source):
                return extractor
        for extractor in self._extractors:
            if source.suffix in extractor.suffixes:
                return extractor
        return None


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry: the built-ins, then installed add-ons (loaded once)."""
    global _default
    with _default_lock:
        if _default is None:
            registry = Registry()
            for reference in BUILTIN:
                registry.load(reference)
            for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                registry.load(entry_point.value)
            _default = registry
        return _default


def register(extractor: Extractor) -> None:
    """Add an extractor to the process-wide registry (what an add-on calls at import)."""
    default_registry().register(extractor)
