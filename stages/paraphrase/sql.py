"""The paraphrase stage's SQL side: what is sent to a backend, and the validation of what comes back.

An SQL item travels as one JSON string `{"db_id", "evidence", "question", "sql"}`: the LLM
prompt reads its `question` and `sql` (`stages.paraphrase.llm.prompts.parse_sql_source`), the
`sql-values` backend all four. A backend answers JSON pairs `{"question", "sql"}` (plus
`evidence` from `sql-values`, which rewrites the hint too; an LLM paraphrase carries no hint,
since the original hint may name the old constant). Every pair, from any backend, passes
`stages.sql.validate` before use; rejections are counted by reason.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa

from schemas.rows import SQL_PARAPHRASE_SCHEMA
from stages.base import Artifacts, StageStats
from stages.plan import KINDS
from stages.text import evidence_of, normalize_text, question_of, render_question


def encode_item(source: str, sql: str, db_id: str) -> str:
    return json.dumps({"db_id": db_id, "evidence": evidence_of(source), "question": question_of(source), "sql": sql},
                      ensure_ascii=False, sort_keys=True)


def sql_items(inputs: dict[str, Artifacts]) -> list[str]:
    """The pool pairs that drew `paraphrase` and every test pair, as sorted distinct items."""
    pool, tests = inputs["ingest"]["pool"], inputs["ingest"]["tests"]
    chosen = np.flatnonzero(inputs["plan"]["kinds"] == KINDS.index("paraphrase")).tolist()
    rows = pool.take(pa.array(chosen, type=pa.int64())).to_pylist() + tests.to_pylist()
    return sorted({encode_item(row["source"], row["target"], row["db_id"]) for row in rows})


def validated_table(items: list[str], found: list[list[str]], validator, stats: StageStats) -> pa.Table:
    """One row per item: its rendered source, the paraphrases that passed and their queries."""
    rejected: Counter = Counter()
    sources, kept_sources, kept_sql = [], [], []
    for raw, candidates in zip(items, found):
        item = json.loads(raw)
        sources.append(render_question(item["question"], item["evidence"]))
        texts, queries = [], []
        for candidate in candidates:
            pair, reason = _judge(item, candidate, validator)
            if reason:
                rejected[reason] += 1
            elif pair not in zip(texts, queries):
                texts.append(pair[0])
                queries.append(pair[1])
        kept_sources.append(texts)
        kept_sql.append(queries)
    for reason, count in rejected.items():
        stats.drop(f"sql: {reason}", count)
    stats.counters["sql_validation"] = {"checked": sum(len(c) for c in found),
                                        "kept": sum(len(k) for k in kept_sql), "rejected": dict(sorted(rejected.items()))}
    return pa.Table.from_pydict({"source": sources, "paraphrases": kept_sources, "targets": kept_sql},
                                schema=SQL_PARAPHRASE_SCHEMA)


def _judge(item: dict, candidate: str, validator) -> tuple[tuple[str, str] | None, str | None]:
    try:
        pair = json.loads(candidate)
        question, sql = str(pair["question"]).strip(), str(pair["sql"]).strip()
    except (ValueError, KeyError, TypeError):
        return None, "malformed pair"
    if not question or not sql:
        return None, "empty question or query"
    if normalize_text(question) == normalize_text(item["question"]) and sql == item["sql"]:
        return None, "identical to source"
    reason = validator.reason(item["db_id"], item["sql"], sql)
    if reason:
        return None, reason
    return (render_question(question, str(pair.get("evidence") or "")), sql), None
