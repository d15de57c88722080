"""Stage: label-preserving paraphrases for the targets that drew `paraphrase`, and every test input.

The backend does the work (and, for paid APIs, its own per-request caching); this stage decides
what to ask for, drops paraphrases that merely repeat their source, and refuses to mark itself done
when a budget stopped the backend part-way, so a rerun with a higher budget resumes. On an SQL
task it asks about question/SQL pairs and keeps only paraphrases that pass the SQL validation,
each with its own query (`stages.paraphrase.sql`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa

from schemas.errors import UserError
from schemas.rows import PARAPHRASE_SCHEMA
from stages.base import Artifacts, Stage, StageStats
from stages.paraphrase.base import ParaphraseBackend
from stages.paraphrase.quality import SLOT_VALUE_MISSING
from stages.paraphrase.slots import encode_request, missing_slot_values, parse_request
from stages.plan import KINDS
from stages.text import normalize_text


def sources_to_paraphrase(inputs: dict[str, Artifacts], task_kind: str = "mt") -> list[str]:
    """The pool sources that drew `paraphrase` and every test source, distinct and sorted; for an
    SQL task, those pairs as JSON items (`stages.paraphrase.sql`), since a paraphrase there changes
    the query too."""
    if task_kind == "sql":
        from stages.paraphrase.sql import sql_items

        return sql_items(inputs)
    pool_sources = inputs["ingest"]["pool"].column("source").to_pylist()
    kinds = inputs["plan"]["kinds"]
    wanted = [pool_sources[i] for i in np.flatnonzero(kinds == KINDS.index("paraphrase"))]
    wanted += inputs["ingest"]["tests"].column("source").to_pylist()
    return sorted(set(wanted))


def backend_requests(inputs: dict[str, Artifacts], sources: list[str], task_kind: str) -> list[str]:
    """What the backend is asked about each source: the source itself, or for semantic parsing a
    request that also names the slot values every paraphrase must keep (of each logical form the
    utterance has in the pool or a test set), so the paraphrase still carries the gold label."""
    if task_kind != "semparse":
        return sources
    forms: dict[str, set[str]] = {source: set() for source in sources}
    for table in (inputs["ingest"]["pool"], inputs["ingest"]["tests"]):
        for source, target in zip(table.column("source").to_pylist(), table.column("target").to_pylist()):
            if source in forms:
                forms[source].add(target)
    return [encode_request(source, sorted(forms[source])) for source in sources]


def keep_slot_values(requests: list[str], kept: list[list[str]], stats: StageStats) -> list[list[str]]:
    """Whatever the backend (a file of paraphrases included), drop every paraphrase that lost a slot
    value of its utterance's logical form; LLM backends already drop them in their quality filter."""
    out = []
    for request, found in zip(requests, kept):
        utterance, keep = parse_request(request)
        good = [p for p in found if not missing_slot_values(utterance, p, keep)]
        stats.drop(SLOT_VALUE_MISSING, len(found) - len(good))
        out.append(good)
    return out


class Paraphrase(Stage):
    name = "paraphrase"
    version = "1"

    def __init__(self, backend_factory: Callable[[], ParaphraseBackend], identity: dict[str, Any], n: int,
                 embedder_identity: dict[str, Any], accept_failures: bool = False, task_kind: str = "mt",
                 sql_validator: Any = None):
        self.backend_factory, self.identity, self.n = backend_factory, identity, n
        self.embedder_identity, self.accept_failures = embedder_identity, accept_failures
        self.task_kind, self.sql_validator = task_kind, sql_validator

    def params(self) -> dict[str, Any]:
        # the embedder decides the cosine-band quality filter, so it keys this stage too
        params = {"backend": self.identity, "n": self.n, "embedder": self.embedder_identity}
        if self.task_kind == "semparse":  # requests name slot values, and the slot check runs
            params["slot_check"] = 1
        if self.task_kind == "sql":  # every paraphrase is validated on its database
            params["sql_validation"] = self.sql_validator.identity()
        return params

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        sources = sources_to_paraphrase(inputs, self.task_kind)
        requests = backend_requests(inputs, sources, self.task_kind)
        backend = self.backend_factory()
        backend.check_ready()
        output = backend.paraphrase(requests, self.n)
        if output.counters.get("budget_exhausted"):
            done = sum(1 for p in output.paraphrases if p)
            raise UserError(f"paraphrase budget reached after {done} of {len(sources)} sources; everything done "
                            f"so far is cached: rerun with a higher --max-cost to finish")
        retryable = int(output.counters.get("retryable_failures", 0) or 0)
        if retryable and not self.accept_failures:
            raise UserError(f"{retryable} of {len(sources)} sources failed for transient reasons (rate limits, "
                            f"server errors, short answers); everything else is cached: rerun to retry them, or "
                            f"pass --paraphraser-option accept_failures=true to build without them")
        for reason, count in {**output.dropped, **{f"failed: {k}": v for k, v in output.failures.items()}}.items():
            stats.drop(reason, count)
        stats.rows_in = len(sources)
        stats.counters.update({k: v for k, v in output.counters.items() if k != "budget_exhausted"})
        if self.task_kind == "sql":
            from stages.paraphrase.sql import validated_table

            table = validated_table(sources, output.paraphrases, self.sql_validator, stats)
        else:
            kept = _distinct_new(sources, output.paraphrases, stats)
            if self.task_kind == "semparse":
                kept = keep_slot_values(requests, kept, stats)
            table = pa.Table.from_pydict({"source": sources, "paraphrases": kept}, schema=PARAPHRASE_SCHEMA)
        stats.rows_out = sum(1 for found in table.column("paraphrases").to_pylist() if found)
        stats.counters["sources_without_paraphrase"] = len(sources) - stats.rows_out
        return Artifacts(paraphrases=table)


def _distinct_new(sources: list[str], paraphrases: list[list[str]], stats: StageStats) -> list[list[str]]:
    """Paraphrases that keep their source's label: distinct, and not the source again."""
    kept: list[list[str]] = []
    for source, found in zip(sources, paraphrases):
        key = normalize_text(source)
        unique = list(dict.fromkeys(p for p in found if p.strip()))
        same = [p for p in unique if normalize_text(p) == key]
        stats.drop("identical to source", len(same))
        kept.append([p for p in unique if normalize_text(p) != key])
    return kept
