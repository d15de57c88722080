"""Text normalisation shared by ingest, the leakage guard and every cache key."""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import Callable

_SPACES = re.compile(r"\s+", re.UNICODE)
_CONTROL = dict.fromkeys(i for i in range(32) if chr(i) not in "\t\n\r")


def clean_text(text: str) -> str:
    """NFC, control characters removed, runs of white space folded to one space, trimmed."""
    text = unicodedata.normalize("NFC", text).translate(_CONTROL)
    return _SPACES.sub(" ", text).strip()


def clean_column(values: "pa.Array") -> "pa.Array":
    """`clean_text` of every value of an Arrow string array at once (nulls stay null), for ingest
    at corpus scale. The character classes are Python's own (`_python_classes`), so the regexes
    match what `re` and `str.strip` match; NFC comes from polars, except that a value polars'
    NFC changes is normalised again by `unicodedata`, so a Unicode version difference between the
    two libraries can never change a byte (text that is NFC, nearly all of it, is left alone by both)."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    raw = pl.Series(values.cast(pa.large_string()))
    nfc = raw.str.normalize("NFC")
    changed = np.flatnonzero((nfc != raw).fill_null(False).to_numpy())
    if len(changed):
        redone = [unicodedata.normalize("NFC", text) for text in raw.gather(changed).to_list()]
        nfc = nfc.scatter(changed, pl.Series(redone, dtype=pl.String))
    control, space = _python_classes()
    folded = nfc.str.replace_all(control, "").str.replace_all(space + "+", " ")
    return folded.str.strip_chars(" ").to_arrow().cast(pa.large_string())


@functools.cache
def _python_classes() -> tuple[str, str]:
    """Regex classes (Rust syntax) of the characters `clean_text` removes and of those `\\s` and
    `str.strip` treat as white space, read off the running Python."""
    spaces = [c for c in range(0x110000) if chr(c).isspace()]
    return _char_class(sorted(_CONTROL)), _char_class(spaces)


def _char_class(codes: list[int]) -> str:
    return "[" + "".join(f"\\x{{{c:x}}}" for c in codes) + "]"


def normalize_text(text: str) -> str:
    """The leakage key: two sources that normalise equal are the same input (case-folded)."""
    return clean_text(text).casefold()


HINT_PREFIX = "\nHint: "


def render_question(question: str, evidence: str | None = None) -> str:
    """An SQL pair's source: the cleaned question, then its evidence (BIRD's external-knowledge
    hint) on a second line when there is one. Both parts are cleaned on their own, so the question
    never holds a line break and the first line of a source is always its question."""
    question, evidence = clean_text(question), clean_text(evidence or "")
    if not question:
        return ""  # no question: ingest rejects the row as having an empty source
    return question + HINT_PREFIX + evidence if evidence else question


def question_of(source: str) -> str:
    """The question of a source rendered by `render_question` (the first line)."""
    return source.split("\n", 1)[0]


def evidence_of(source: str) -> str:
    """The evidence of a source rendered by `render_question` ("" without one)."""
    return source.split(HINT_PREFIX, 1)[1] if HINT_PREFIX in source else ""


def retrieval_view(task_kind: str) -> Callable[[str], str]:
    """What retrieval, embeddings and the leakage guard compare: the question alone for SQL tasks
    (a hint restates the schema, not the question), the whole source otherwise."""
    return question_of if task_kind == "sql" else _whole


def _whole(source: str) -> str:
    return source
