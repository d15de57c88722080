"""Literal swaps: the offline paraphrases of a question/SQL pair (backend `sql-values`).

A swap replaces literals of the query with other values of the same column, drawn from the
database's sampled cell values, and rewrites the question (and its evidence) where the old value
appears verbatim. Which literals are swapped:

- only literals compared directly with a column (`stages.sql.literals.bound_literals`), since
  only those have "another value of the same column";
- only those whose value occurs in the question as a whole word or phrase (case-sensitive): a
  literal the question does not spell out stays as it is, so question and query still agree;
- a value occurring several times in the query (bound to one column) gets the same new value
  everywhere.

A pair with no such literal yields nothing (counted as "no literal of the query is in the
question"). A new value must differ from the old one, have the same kind (text for a quoted
literal, a number for a number) and not occur in the question already. Each draw is checked
with `accept` (the validator: parses, same query up to literals, returns rows); up to
`tries_per_paraphrase` draws are made per wanted paraphrase.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from stages.sql.literals import BoundLiteral, SqlParseError, bound_literals, sql_literal, substitute, value_text
from stages.sql.schema import DatabaseSchema

NO_LITERAL = "no literal of the query is in the question"
NO_VALUES = "no other value of the column"
NO_VALID_SWAP = "no swap passed validation"
UNPARSABLE = "original does not parse"


@dataclass(frozen=True)
class Swap:
    question: str
    evidence: str
    sql: str


@dataclass
class _Slot:
    """One literal value to change: every span where the query writes it, and its candidates."""

    value: str
    is_string: bool
    spans: list[tuple[int, int]]
    candidates: list


def literal_swaps(question: str, evidence: str, sql: str, schema: DatabaseSchema, n: int,
                  rng: np.random.Generator, accept: Callable[[str], bool],
                  tries_per_paraphrase: int = 3) -> tuple[list[Swap], str | None]:
    """Up to n distinct swaps of the pair, or ([], why none)."""
    try:
        bound = bound_literals(sql, schema)
    except SqlParseError:
        return [], UNPARSABLE
    slots = _slots([b for b in bound if _occurs(b.value, question)], schema, question)
    if not slots:
        return [], NO_LITERAL
    slots = [slot for slot in slots if slot.candidates]
    if not slots:
        return [], NO_VALUES
    found: list[Swap] = []
    seen = {sql}
    for _ in range(n * tries_per_paraphrase):
        picks = [slot.candidates[int(rng.integers(len(slot.candidates)))] for slot in slots]
        new_sql = substitute(sql, {span: sql_literal(pick, slot.is_string)
                                   for slot, pick in zip(slots, picks) for span in slot.spans})
        if new_sql in seen:
            continue
        seen.add(new_sql)
        if accept(new_sql):
            found.append(Swap(_rewrite(question, slots, picks), _rewrite(evidence, slots, picks), new_sql))
            if len(found) == n:
                break
    return found, (None if found else NO_VALID_SWAP)


def _occurs(value: str, text: str) -> bool:
    return bool(value.strip()) and _pattern(value).search(text) is not None


def _pattern(value: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)")


def _slots(bound: list[BoundLiteral], schema: DatabaseSchema, question: str) -> list[_Slot]:
    """Group the literals by value; a value bound to two different columns is left alone."""
    groups: dict[tuple[str, bool], list[BoundLiteral]] = {}
    for item in bound:
        groups.setdefault((item.value, item.is_string), []).append(item)
    slots = []
    for (value, is_string), items in groups.items():
        columns = {(b.table.casefold(), b.column.casefold()) for b in items}
        if len(columns) != 1:
            continue
        column = schema.table(items[0].table).column(items[0].column)
        slots.append(_Slot(value, is_string, [(b.start, b.end) for b in items],
                           _candidates(column.values, value, is_string, question)))
    return slots


def _candidates(values: tuple, old: str, is_string: bool, question: str) -> list:
    out = []
    for value in values:
        if isinstance(value, str) != is_string:
            continue
        text = value_text(value)
        if text == old or text.strip() != text or _occurs(text, question):
            continue
        out.append(value)
    return out


def _rewrite(text: str, slots: list[_Slot], picks: list) -> str:
    """Every whole-word occurrence of each old value replaced by its new value, in one pass."""
    if not text:
        return text
    by_old = {slot.value: value_text(pick) for slot, pick in zip(slots, picks)}
    pattern = re.compile("|".join(_pattern(old).pattern for old in sorted(by_old, key=len, reverse=True)))
    return pattern.sub(lambda match: by_old[match.group(0)], text)
