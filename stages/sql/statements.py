"""Splitting SQL text into statements without running it, the way SQLite's tokenizer would.

A semicolon ends a statement only outside string literals ('...'), quoted identifiers ("...",
`...`, [...]), comments (-- to end of line, /* ... */) and parameter names: SQLite reads
`$a(...)` as one token up to the closing parenthesis, so a quote inside it starts no string. Pieces that hold nothing but white
space and comments are no statement at all, so `SELECT 1;` and `SELECT 1; -- done` are one
statement, while `SELECT 1; DROP TABLE t` is two, and `'a;b'` never splits.
"""
from __future__ import annotations

import re

QUOTE_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}
_WORD = re.compile(r"[A-Za-z_]+")
_VARIABLE_STARTS = "$@:#"


def _id_char(char: str) -> bool:
    """SQLite's IdChar: ASCII letters, digits, _ and $, and every non-ASCII character."""
    return not char.isascii() or char.isalnum() or char in "_$"


def _skip_variable(sql: str, start: int) -> int:
    """Index just past the parameter token opening at `start` ($name, :name, @name, #name), read
    as SQLite's tokenizer does: name characters, `::` separators, and a `(...)` suffix that runs
    to the first `)` or white space."""
    i, named = start + 1, False
    while i < len(sql):
        if _id_char(sql[i]):
            i, named = i + 1, True
        elif sql[i] == "(" and named:
            i += 1
            while i < len(sql) and not sql[i].isspace() and sql[i] != ")":
                i += 1
            return i + 1 if i < len(sql) and sql[i] == ")" else i
        elif sql.startswith("::", i):
            i += 2
        else:
            break
    return i


def skip_quoted(sql: str, start: int) -> int:
    """Index just past the quoted token opening at `start` (a doubled closer is an escape,
    except in [...]); an unterminated token runs to the end."""
    closer = QUOTE_CLOSERS[sql[start]]
    i = start + 1
    while True:
        end = sql.find(closer, i)
        if end < 0:
            return len(sql)
        if closer != "]" and sql.startswith(closer * 2, end):
            i = end + 2
            continue
        return end + 1


def skip_comment(sql: str, start: int) -> int:
    """Index just past the comment opening at `start` (an unterminated /* runs to the end)."""
    if sql.startswith("--", start):
        end = sql.find("\n", start)
        return len(sql) if end < 0 else end + 1
    end = sql.find("*/", start + 2)
    return len(sql) if end < 0 else end + 2


def _pieces(sql: str) -> list[tuple[str, str]]:
    """(original text, text with comments blanked) of each semicolon-separated piece."""
    pieces: list[tuple[str, str]] = []
    original, code = [], []
    i = 0
    while i < len(sql):
        char = sql[i]
        if char in QUOTE_CLOSERS:
            end = skip_quoted(sql, i)
            original.append(sql[i:end])
            code.append(sql[i:end])
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            end = skip_comment(sql, i)
            original.append(sql[i:end])
            code.append(" ")
        elif char in _VARIABLE_STARTS:
            end = _skip_variable(sql, i)
            original.append(sql[i:end])
            code.append(sql[i:end])
        elif char == ";":
            pieces.append(("".join(original), "".join(code)))
            original, code, end = [], [], i + 1
        else:
            end = i + 1
            original.append(char)
            code.append(char)
        i = end
    pieces.append(("".join(original), "".join(code)))
    return pieces


def split_statements(sql: str) -> list[str]:
    """The statements of `sql`, each without its closing semicolon, comment-only pieces dropped."""
    return [text.strip() for text, code in _pieces(sql) if code.strip()]


def leading_keyword(statement: str) -> str:
    """The statement's first word, upper-cased ('' when it starts with something else), after
    any leading comments: SELECT, WITH, DROP, ..."""
    code = _pieces(statement)[0][1].lstrip()
    match = _WORD.match(code)
    return match.group(0).upper() if match else ""
