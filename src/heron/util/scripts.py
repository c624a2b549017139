"""Which writing systems a text uses, and which a language is written in.

A text tower reads a text when every script of the text's letters belongs to one of the
tower's languages; bilingual bundles route each text to the towers that can read it, and a
query in a script no tower reads runs with a warning.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

# Unicode character-name prefixes that name a script, longest first where one is a prefix.
_SCRIPT_PREFIXES = (
    ("CJK", "han"),
    ("HIRAGANA", "kana"),
    ("KATAKANA", "kana"),
    ("HANGUL", "hangul"),
    ("LATIN", "latin"),
    ("CYRILLIC", "cyrillic"),
    ("GREEK", "greek"),
    ("ARABIC", "arabic"),
    ("HEBREW", "hebrew"),
    ("DEVANAGARI", "devanagari"),
    ("THAI", "thai"),
    ("FULLWIDTH LATIN", "latin"),
    ("BOPOMOFO", "han"),
)
_LATIN_LANGUAGES = frozenset(
    [
        "en",
        "de",
        "fr",
        "es",
        "it",
        "pt",
        "nl",
        "sv",
        "da",
        "no",
        "nb",
        "fi",
        "pl",
        "cs",
        "sk",
        "sl",
        "hr",
        "ro",
        "hu",
        "tr",
        "id",
        "ms",
        "vi",
        "ca",
        "eu",
        "gl",
        "et",
        "lv",
        "lt",
    ]
)
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"latin"}) for code in _LATIN_LANGUAGES},
    # Chinese text routinely carries Latin words and numbers ("iPhone 15 的相机").
    "zh": frozenset({"han", "latin"}),
    "ja": frozenset({"han", "kana", "latin"}),
    "ko": frozenset({"hangul", "han", "latin"}),
    "ru": frozenset({"cyrillic"}),
    "uk": frozenset({"cyrillic"}),
    "el": frozenset({"greek"}),
    "ar": frozenset({"arabic"}),
    "he": frozenset({"hebrew"}),
    "hi": frozenset({"devanagari"}),
    "th": frozenset({"thai"}),
}
LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "ja": "Japanese",
    "ko": "Korean",
    "ru": "Russian",
}
SCRIPT_NAMES = {"han": "Chinese (Han)", "kana": "Japanese kana", "hangul": "Hangul"}


def char_script(char: str) -> str:
    """The script of one letter ('latin', 'han', ...), or 'other'."""
    name = unicodedata.name(char, "")
    for prefix, script in _SCRIPT_PREFIXES:
        if name.startswith(prefix):
            return script
    return "other"


def text_scripts(text: str) -> frozenset[str]:
    """The scripts of the letters in `text` (digits, punctuation and symbols have none)."""
    return frozenset(char_script(char) for char in text if char.isalpha())


def scripts_of(languages: Iterable[str]) -> frozenset[str] | None:
    """The scripts these languages are written in; None when any of them is unknown here."""
    scripts: set[str] = set()
    for code in languages:
        known = LANGUAGE_SCRIPTS.get(code)
        if known is None:
            return None
        scripts |= known
    return frozenset(scripts)


def readable(text: str, languages: Iterable[str]) -> bool:
    """Whether a tower that knows `languages` can read `text` (unknown languages: assume so)."""
    languages = tuple(languages)
    if not languages:
        return True
    scripts = scripts_of(languages)
    return scripts is None or text_scripts(text) <= scripts


def language_of(text: str, languages: Sequence[str]) -> str | None:
    """The first of `languages` whose scripts cover `text` (the tower's main language for
    script-less text); None when none of them does or `languages` is empty."""
    for code in languages:
        if readable(text, (code,)):
            return code
    return None


def unreadable_scripts(text: str, languages: Iterable[str]) -> list[str]:
    """Readable names of the scripts in `text` that none of `languages` uses."""
    languages = tuple(languages)
    scripts = scripts_of(languages) if languages else None
    if scripts is None:  # the bundle does not say, or says something unknown here: no guess
        return []
    return sorted(SCRIPT_NAMES.get(s, s.title()) for s in text_scripts(text) - scripts)
