"""The literal constants of an SQL query, with sqlglot: masking them, and finding the column each
one is compared with.

A paraphrased pair may change a query only in its literals (appendix C.3 of the paper). "Only" is
checked on syntax trees: both queries parse (SQLite dialect, one statement) and their trees are
equal once every string literal is replaced by '?' and every number by 0 (so a string may not
become a number, nor the reverse). Keywords compare case-insensitively, names exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

from stages.sql.schema import DatabaseSchema
from stages.sql.statements import QUOTE_CLOSERS, skip_comment, skip_quoted

COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "In", "Between")


class SqlParseError(ValueError):
    """The text is not one SQLite statement sqlglot can parse."""


def parse_sql(sql: str):
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        trees = [tree for tree in sqlglot.parse(sql, read="sqlite") if tree is not None]
    except SqlglotError as exc:
        raise SqlParseError(str(exc).splitlines()[0] if str(exc) else "parse error") from None
    if len(trees) != 1:
        raise SqlParseError(f"{len(trees)} statements, expected one")
    return trees[0]


def masked(tree):
    """A copy of the tree with string literals as '?' and numbers as 0."""
    from sqlglot import exp

    copy = tree.copy()
    for literal in list(copy.find_all(exp.Literal)):
        literal.replace(exp.Literal.string("?") if literal.is_string else exp.Literal.number(0))
    return copy


def same_but_literals(original: str, candidate: str) -> bool:
    """True when `candidate` differs from `original` at most in its literal constants (both must
    parse; SqlParseError otherwise)."""
    return masked(parse_sql(original)) == masked(parse_sql(candidate))


@dataclass(frozen=True)
class BoundLiteral:
    """A literal compared directly with a column: `T1.County = 'Fresno'`, `year > 2010`."""

    start: int  # character offsets of the literal in the query text (quotes included), end exclusive
    end: int
    value: str  # the literal's value as written (without quotes)
    is_string: bool
    table: str  # the real table name the column belongs to
    column: str


def bound_literals(sql: str, schema: DatabaseSchema) -> list[BoundLiteral]:
    """Every literal of `sql` compared (=, !=, <, <=, >, >=, IN, BETWEEN) with a column whose table
    can be told from the query: by its qualifier (a table name or alias), or as the only table of
    the query having a column of that name. LIKE patterns, LIMIT counts and literals inside
    functions or arithmetic are not bound: they are not values of a column."""
    from sqlglot import exp

    tree = parse_sql(sql)
    aliases = {t.alias_or_name.casefold(): t.name for t in tree.find_all(exp.Table)}
    out = []
    for literal in tree.find_all(exp.Literal):
        column = _compared_column(literal)
        meta = literal.meta or {}
        if column is None or "start" not in meta or "end" not in meta:
            continue
        table = _table_of(column, aliases, schema)
        if table is not None:
            out.append(BoundLiteral(meta["start"], meta["end"] + 1, str(literal.this), literal.is_string,
                                    table, column.name))
    return sorted(out, key=lambda b: b.start)


def _compared_column(literal):
    from sqlglot import exp

    parent = literal.parent
    if parent is None or type(parent).__name__ not in COMPARISONS:
        return None
    if isinstance(parent, (exp.In, exp.Between)):
        column = parent.this
        return column if isinstance(column, exp.Column) and literal is not column else None
    sides = [parent.this, parent.expression]
    other = sides[1] if sides[0] is literal else sides[0]
    return other if isinstance(other, exp.Column) else None


def _table_of(column, aliases: dict[str, str], schema: DatabaseSchema) -> str | None:
    if column.table:
        name = aliases.get(column.table.casefold(), column.table)
        table = schema.table(name)
        return table.name if table is not None and table.column(column.name) is not None else None
    having = {schema.table(name).name for name in aliases.values()
              if schema.table(name) is not None and schema.table(name).column(column.name) is not None}
    return having.pop() if len(having) == 1 else None


def sql_literal(value: str | int | float, is_string: bool) -> str:
    """The SQL text of a literal: a quoted string (quotes doubled) or a plain number."""
    if is_string:
        return "'" + str(value).replace("'", "''") + "'"
    return value_text(value)


def value_text(value: str | int | float) -> str:
    """How a value reads in a question: 3.0 -> "3", 2.5 -> "2.5", strings as they are."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def substitute(sql: str, replacements: dict[tuple[int, int], str]) -> str:
    """`sql` with each (start, end) span replaced, spans applied right to left."""
    for (start, end), text in sorted(replacements.items(), reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql


def one_line(sql: str) -> str:
    """The query on one line: white space outside quoted tokens folded to single spaces and
    comments dropped (a `--` comment would swallow the rest of a folded line). Models answer on
    one line (generation stops at the first newline), so a gold query must be one line too, and
    white space inside a literal is never touched: it changes what the query matches."""
    out: list[str] = []
    i, n, gap = 0, len(sql), False
    while i < n:
        ch = sql[i]
        if ch in QUOTE_CLOSERS:
            end = skip_quoted(sql, i)
            out.append((" " if gap and out else "") + sql[i:end])
            i, gap = end, False
        elif sql.startswith(("--", "/*"), i):
            i, gap = skip_comment(sql, i), True
        elif ch.isspace():
            i, gap = i + 1, True
        else:
            out.append((" " if gap and out else "") + ch)
            i, gap = i + 1, False
    return "".join(out)
