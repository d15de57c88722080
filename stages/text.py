"""Text normalisation shared by ingest, the leakage guard and every cache key."""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

_SPACES = re.compile(r"\s+", re.UNICODE)
_CONTROL = dict.fromkeys(i for i in range(32) if chr(i) not in "\t\n\r")


def clean_text(text: str) -> str:
    """NFC, control characters removed, runs of white space folded to one space, trimmed."""
    text = unicodedata.normalize("NFC", text).translate(_CONTROL)
    return _SPACES.sub(" ", text).strip()


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
