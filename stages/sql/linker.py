"""Schema linking: the part of a database's schema a question needs, for the prompt.

A purely lexical linker, deterministic and offline. The question (with its evidence) is cut into
lower-case words, each reduced to a crude singular ("schools" -> "school", "cities" -> "city").

- a table is linked when every word of its name occurs in the question;
- a column is linked when every word of its name occurs in the question, or when one of its
  sampled cell values (`stages.sql.schema`: distinct values among a table's first rows) occurs
  in the question as a whole phrase (text values of 3+ characters, compared case-insensitively,
  and integers of 3+ digits such as years);
- the prompt shows every linked table, and every table holding a linked column unless that
  column only matched by a generic name (`name`, `id`, `year`, ...: see GENERIC). A table linked
  by its name shows its first MAX_COLUMNS columns and its linked ones; any other shown table its
  linked columns. Every shown table adds its primary key and the foreign keys between shown
  tables. A column shows the values it matched, else up to two sample values. When nothing
  links, the whole schema is shown.

The paper filters with a trained schema classifier (RESDSQL/CodeS style: a cross-encoder scores
every table and column against the question and keeps the top ones, and values come from a BM25
index over all cells). This linker needs no model and no index, so it misses a column the
question names by a synonym ("pupils" for `enrollment`) or a value outside the sample; BIRD's
evidence often names the columns outright, which is why it is matched along with the question.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from stages.sql.literals import sql_literal
from stages.sql.schema import Column, DatabaseSchema, Table

MAX_COLUMNS = 20  # columns shown for a table linked by its name (besides the matched ones)
# column names so common that matching one ("the name of ...") does not bring its table in alone
GENERIC = frozenset({"id", "name", "code", "type", "date", "year", "number", "count", "total", "value", "title",
                     "status", "description"})
SHOWN_VALUES = 2
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
LINKER_VERSION = 1  # bump when a change here alters which schema a prompt shows


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@functools.lru_cache(maxsize=65536)
def words(text: str) -> frozenset[str]:
    """Lower-case singular words; camelCase and snake_case names split into their parts (cached:
    every question meets every table and column name of its database)."""
    return frozenset(_singular(w.lower()) for w in _WORDS.findall(text))


@dataclass
class LinkedTable:
    table: Table
    columns: list[Column]
    values: dict[str, list]  # column name -> the values the question matched


def link(schema: DatabaseSchema, text: str) -> list[LinkedTable]:
    """The tables and columns of `schema` that `text` (question and evidence) refers to."""
    asked, lowered = words(text), f" {text.casefold()} "
    chosen: dict[str, LinkedTable] = {}
    for table in schema.tables:
        by_name = bool(words(table.name)) and words(table.name) <= asked
        matched, values, specific = [], {}, False
        for column in table.columns:
            hits = [v for v in column.values if _value_in(v, lowered)]
            named = bool(words(column.name)) and words(column.name) <= asked
            if hits:
                values[column.name] = [v for v in hits if isinstance(v, str)][:SHOWN_VALUES]
            if hits or named:
                matched.append(column)
                specific = specific or bool(hits) or not words(column.name) <= GENERIC
        if by_name or specific:
            shown = {c.name for c in (*table.columns[:MAX_COLUMNS], *matched)} if by_name else {c.name for c in matched}
            chosen[table.name] = LinkedTable(table, [c for c in table.columns if c.name in shown], values)
    if not chosen:
        chosen = {t.name: LinkedTable(t, list(t.columns[:MAX_COLUMNS]), {}) for t in schema.tables}
    for linked in chosen.values():
        _add_keys(linked, chosen)
    return list(chosen.values())


def _value_in(value: object, lowered_text: str) -> bool:
    """A text value of 3+ characters, or an integer of 3+ digits (a year, a code), occurring in
    the text as a whole phrase."""
    if isinstance(value, str):
        return _phrase_in(value, lowered_text)
    if isinstance(value, int) and abs(value) >= 100:
        return _phrase_in(str(value), lowered_text, letters=False)
    return False


def _phrase_in(value: str, lowered_text: str, letters: bool = True) -> bool:
    value = value.strip().casefold()
    if len(value) < 3 or (letters and not any(ch.isalpha() for ch in value)):
        return False
    at = lowered_text.find(value)
    while at >= 0:
        before, after = lowered_text[at - 1], lowered_text[at + len(value)]
        if not before.isalnum() and not after.isalnum():
            return True
        at = lowered_text.find(value, at + 1)
    return False


def _add_keys(linked: LinkedTable, chosen: dict[str, LinkedTable]) -> None:
    """Primary key and the foreign keys to other shown tables, in declaration order."""
    keep = {c.name for c in linked.columns} | {c.name for c in linked.table.columns if c.primary_key}
    keep |= {fk.column for fk in linked.table.foreign_keys if fk.ref_table in chosen}
    linked.columns = [c for c in linked.table.columns if c.name in keep]


def render_schema(linked: list[LinkedTable]) -> str:
    """CREATE TABLE statements, one column a line with example values as comments, names quoted
    with backticks where needed (the style of BIRD's queries)."""
    shown = {item.table.name for item in linked}
    blocks = []
    for item in linked:
        kept = {c.name for c in item.columns}
        entries = [(_column_text(c), _examples(c, item.values.get(c.name))) for c in item.columns]
        entries += [(f"FOREIGN KEY ({_name(fk.column)}) REFERENCES {_name(fk.ref_table)}({_name(fk.ref_column)})", "")
                    for fk in item.table.foreign_keys if fk.ref_table in shown and fk.column in kept]
        body = [f"  {text}{',' if i < len(entries) - 1 else ''}{comment}" for i, (text, comment) in enumerate(entries)]
        blocks.append("\n".join([f"CREATE TABLE {_name(item.table.name)} (", *body, ");"]))
    return "\n".join(blocks)


def _column_text(column: Column) -> str:
    text = f"{_name(column.name)} {column.type}".rstrip()
    return text + " PRIMARY KEY" if column.primary_key else text


def _examples(column: Column, matched: list | None) -> str:
    values = matched or [v for v in column.values if isinstance(v, str)][:SHOWN_VALUES]
    return " -- e.g. " + ", ".join(sql_literal(v, True) for v in values) if values else ""


def _name(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else "`" + name.replace("`", "``") + "`"


def linked_schema_text(schema: DatabaseSchema, text: str) -> str:
    return render_schema(link(schema, text))
