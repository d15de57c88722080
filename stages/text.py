"""Text normalisation shared by ingest, the leakage guard and every cache key."""
from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+", re.UNICODE)
_CONTROL = dict.fromkeys(i for i in range(32) if chr(i) not in "\t\n\r")


def clean_text(text: str) -> str:
    """NFC, control characters removed, runs of white space folded to one space, trimmed."""
    text = unicodedata.normalize("NFC", text).translate(_CONTROL)
    return _SPACES.sub(" ", text).strip()


def normalize_text(text: str) -> str:
    """The leakage key: two sources that normalise equal are the same input (case-folded)."""
    return clean_text(text).casefold()
