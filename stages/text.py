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
    """`clean_text` of every value of an Arrow string array (nulls stay null), for ingest at
    corpus scale: only the values that cleaning can change are touched. A value that the Unicode
    quick check cannot prove to be NFC (`_cleaning_patterns`) is normalised by `unicodedata`
    itself, so NFC is exactly Python's; the control and white-space classes are read off the
    running Python, so the polars regexes match what `re` and `str.strip` match. Those values are
    normalised word by word (`nfc_by_word`), each distinct word of the batch once."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    maybe_not_nfc, control, space, unclean = _cleaning_patterns()
    text = pl.Series(values.cast(pa.large_string()))
    redo = np.flatnonzero(text.str.contains(maybe_not_nfc).fill_null(False).to_numpy())
    if len(redo):
        text = text.scatter(redo, nfc_by_word(text.gather(redo), maybe_not_nfc))
    dirty = np.flatnonzero(text.str.contains(unclean).fill_null(False).to_numpy())
    if len(dirty):
        fixed = text.gather(dirty).str.replace_all(control, "").str.replace_all(space + "+", " ").str.strip_chars(" ")
        text = text.scatter(dirty, fixed)
    return text.to_arrow().cast(pa.large_string())


def nfc_by_word(values: "pl.Series", maybe_not_nfc: str) -> "pl.Series":
    """`unicodedata.normalize("NFC", v)` of each (non-null) value, computed once per distinct
    space-separated word that the quick check (`maybe_not_nfc`) cannot prove NFC: the values of a
    corpus repeat each other's words (a 1M-row Hindi corpus spent 9.5 s in per-value NFC, most of
    ingest's time). Exact, because NFC never acts across U+0020: it is a starter (combining class
    0) that decomposes to itself and is in no canonical composition pair, so canonical reordering
    stops at it and no character composes across it (tests/test_ingest_clean_column.py checks this
    against the running Unicode database). Splitting, mapping and joining stay in polars."""
    import polars as pl

    words = values.str.split(" ")
    distinct = words.explode().unique()
    todo = distinct.filter(distinct.str.contains(maybe_not_nfc).fill_null(False))
    nfc = pl.Series([unicodedata.normalize("NFC", word) for word in todo.to_list()], dtype=pl.String)
    return words.list.eval(pl.element().replace(todo, nfc)).list.join(" ")


@functools.cache
def _cleaning_patterns() -> tuple[str, str, str, str]:
    """Regexes (Rust syntax) from this Python's Unicode database: (a value that may not be NFC,
    a character `clean_text` removes, a white-space character, a value `clean_text` may change).

    A value is NFC when the quick check of UAX #15 says YES: no character whose NFC_QC is No
    (it changes on its own) or Maybe (the second of a composition pair, Hangul V and T jamo), and
    no two combining marks in a row (the only place canonical reordering can happen)."""
    qc_no, qc_maybe, marks = [], set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3)), []
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.combining(char):
            marks.append(code)
        decomposition = unicodedata.decomposition(char)
        if not decomposition or decomposition.startswith("<"):
            continue
        if unicodedata.normalize("NFC", char) != char:
            qc_no.append(code)
        elif len(parts := decomposition.split()) == 2:
            qc_maybe.add(int(parts[1], 16))
    spaces = [c for c in range(0x110000) if chr(c).isspace()]
    control, space = _char_class(sorted(_CONTROL)), _char_class(spaces)
    unclean = f"{control}|{_char_class([c for c in spaces if c != 0x20])}|  |^ | $"
    return f"{_char_class(sorted(qc_maybe.union(qc_no)))}|{_char_class(marks)}{{2}}", control, space, unclean


def _char_class(codes: list[int]) -> str:
    """A regex class of `codes`, runs of consecutive code points written as ranges."""
    runs, start = [], None
    for i, code in enumerate(codes):
        start = code if start is None else start
        if i + 1 == len(codes) or codes[i + 1] != code + 1:
            runs.append(f"\\x{{{start:x}}}" + (f"-\\x{{{code:x}}}" if code != start else ""))
            start = None
    return "[" + "".join(runs) + "]"


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
