"""Stage: the four training sets, the eval set and the probe set (docs/design.md sections 2 and 3).

Each table draws from its own seeded RNG stream, so changing the contrastive weights never
changes the `random` regime, and changing τ never changes `contrastive`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from schemas.config import BuildConfig
from schemas.rows import EVAL_SCHEMA, PROBE_SCHEMA, TRAIN_SCHEMA
from stages.base import Artifacts, Stage, StageStats
from stages.assemble.contexts import Context, ContextSampler, Query
from stages.plan import KINDS
from stages.assemble.prompts import PromptRenderer
from stages.assemble.shuffle import DERANGED, PARTIAL, UNCHANGED, shuffled_labels
from stages.retrieve.bm25 import BM25Index
from stages.retrieve.stage import group_key, retrieval_tokenizer, source_groups

TRAIN_TABLES = {"zero": "train_zero", "random": "train_random", "similar": "train_similar",
                "contrastive": "train_contrastive"}


class Assemble(Stage):
    name = "assemble"
    version = "3"  # 3: rows carry db_id; SQL prompts show the linked schema

    def __init__(self, config: BuildConfig, sql: Any = None):
        self.config = config
        self.sql = sql  # SQL tasks: the build's `stages.sql.databases.SqlDatabases`

    def params(self) -> dict[str, Any]:
        c = self.config
        params = {"k": c.k, "seed": c.seed, "tau": c.tau, "probe_size": c.probe_size,
                  "prompt": c.task.prompt.model_dump(), "tokens": c.task.retrieval_tokens,
                  "langs": [c.task.source_lang, c.task.target_lang]}
        if c.task.kind == "sql":
            from stages.sql.linker import LINKER_VERSION
            from stages.sql.schema import SAMPLE_ROWS, VALUES_PER_COLUMN

            params["sql"] = {"text": "question", "linker": LINKER_VERSION,
                             "values": {"sample_rows": SAMPLE_ROWS, "per_column": VALUES_PER_COLUMN}}
        return params

    def _renderer(self) -> PromptRenderer:
        if self.config.task.kind != "sql":
            return PromptRenderer(self.config.task)
        from stages.sql.linker import linked_schema_text

        return PromptRenderer(self.config.task, lambda db_id, source: linked_schema_text(self.sql.schema(db_id), source))

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        kind = self.config.task.kind
        tokenize = retrieval_tokenizer(self.config.task.retrieval_tokens, kind)
        sampler, pool_q, test_q = _build_queries(inputs, self.config.k, tokenize, kind)
        render = self._renderer()
        seed, out = self.config.seed, Artifacts()
        stats.rows_in = len(pool_q) + len(test_q)
        out["train_zero"] = _table([_row(render, Context(q, [], [], "zero"), None, None, "zero", sampler)
                                    for q in pool_q], TRAIN_SCHEMA)
        for regime in ("random", "similar"):
            rng = np.random.default_rng([seed, 31, KINDS.index(regime)])
            contexts = [sampler.context(q, regime, rng) for q in pool_q]
            out[TRAIN_TABLES[regime]] = self._scored_table(contexts, regime, sampler, render, stats)
        self._count_tau(out["train_similar"].num_rows, len(pool_q), stats)
        kinds = inputs["plan"]["kinds"]
        rng = np.random.default_rng([seed, 32])
        contexts = [sampler.context(q, KINDS[int(kind)], rng) for q, kind in zip(pool_q, kinds)]
        fallbacks = sum(1 for c, kind in zip(contexts, kinds) if KINDS[int(kind)] == "paraphrase" and c.kind != "paraphrase")
        stats.counters["paraphrase_fallback_to_near"] = fallbacks
        out["train_contrastive"] = self._scored_table(contexts, "contrastive", sampler, render, stats)
        out["eval"] = _eval_table(test_q, sampler, render, np.random.default_rng([seed, 33]), stats)
        out["probe"] = _probe_table(test_q, sampler, render, self.config.probe_size,
                                    np.random.default_rng([seed, 34]), stats)
        stats.counters["rows"] = {name: table.num_rows for name, table in out.items()}
        stats.rows_out = sum(table.num_rows for table in out.values())
        return out

    def _count_tau(self, kept: int, targets: int, stats: StageStats) -> None:
        """How many targets passed τ, and a warning when none did (an empty train-similar)."""
        if self.config.tau is None:
            return
        stats.counters["similar_tau"] = {"tau": self.config.tau, "passed": kept, "targets": targets}
        if kept == 0:
            stats.warnings.append(f"similar regime: 0 of {targets} targets passed tau={self.config.tau} "
                                  "(mean cosine to their examples); train-similar is empty")

    def _scored_table(self, contexts: list[Context], regime: str, sampler: ContextSampler,
                      render: PromptRenderer, stats: StageStats) -> pa.Table:
        bm25, cosine = sampler.score(contexts)
        rows = []
        for r, ctx in enumerate(contexts):
            if regime == "similar" and self.config.tau is not None and cosine[r].mean() < self.config.tau:
                stats.drop("similar: mean cosine below tau")
                continue
            rows.append(_row(render, ctx, bm25[r], cosine[r], regime, sampler))
        return _table(rows, TRAIN_SCHEMA)


def _build_queries(inputs: dict[str, Artifacts], k: int, tokenize,
                   kind: str = "mt") -> tuple[ContextSampler, list[Query], list[Query]]:
    pool, tests = inputs["ingest"]["pool"], inputs["ingest"]["tests"]
    emb, ret = inputs["embed"], inputs["retrieve"]
    pool_sources = pool.column("source").to_pylist()
    groups, keys = source_groups(pool_sources, kind)
    pool_tokens = tokenize(pool_sources)
    sampler = ContextSampler(pool.column("id").to_pylist(), pool_sources, pool.column("target").to_pylist(),
                             emb["pool_emb"], groups, BM25Index(pool_tokens), k, tokenize,
                             pool.column("db_id").to_pylist())
    lookup = _paraphrase_lookup(inputs["paraphrase"]["paraphrases"], emb)

    def query(id_, source, target, db_id, tokens, vec, group, cands, test_set="") -> Query:
        found, vecs, targets = lookup.get(source, ([], None, []))
        return Query(id_, source, target, tokens, vec, group, cands, list(found), vecs, test_set, db_id, list(targets))

    pool_q = [query(i, s, t, db, tok, emb["pool_emb"][r], int(groups[r]), ret["pool_idx"][r])
              for r, (i, s, t, db, tok) in enumerate(zip(sampler.ids, pool_sources, sampler.targets, sampler.db_ids,
                                                         pool_tokens))]
    test_sources = tests.column("source").to_pylist()
    test_q = [query(i, s, t, db, tok, emb["test_emb"][r], keys.get(group_key(s, kind), -1), ret["test_idx"][r], ts)
              for r, (i, s, t, db, tok, ts) in enumerate(zip(tests.column("id").to_pylist(), test_sources,
                                                             tests.column("target").to_pylist(),
                                                             tests.column("db_id").to_pylist(),
                                                             tokenize(test_sources),
                                                             tests.column("test_set").to_pylist()))]
    return sampler, pool_q, test_q


def _paraphrase_lookup(para, emb: Artifacts) -> dict[str, tuple[list[str], Any, list[str]]]:
    """source -> (paraphrases, their embeddings, their own targets: SQL tasks only, else [])."""
    offsets = emb["para_offsets"]
    sources = para.column("source").to_pylist()
    found = para.column("paraphrases").to_pylist()
    targets = para.column("targets").to_pylist() if "targets" in para.column_names else [[]] * len(sources)
    return {s: (f, emb["para_emb"][offsets[i]:offsets[i + 1]], t)
            for i, (s, f, t) in enumerate(zip(sources, found, targets))}


def _row(render: PromptRenderer, ctx: Context, bm25, cosine, regime: str, sampler: ContextSampler) -> dict:
    q = ctx.query
    examples = sampler.examples(ctx, bm25, cosine) if ctx.slots else []
    max_sim = float(np.clip(max((e["cosine"] for e in examples), default=0.0), 0.0, 1.0))
    return {"id": f"{regime}-{q.id}", "target_id": q.id, "source": q.source, "target": q.target, "db_id": q.db_id,
            "regime": regime, "context_kind": ctx.kind, "examples": examples, "max_sim": max_sim,
            "prompt": render.prompt(examples, q.source, q.db_id), "completion": render.completion(q.target)}


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _eval_table(test_q: list[Query], sampler: ContextSampler, render: PromptRenderer,
                rng: np.random.Generator, stats: StageStats) -> pa.Table:
    plan: list[tuple[str, Context]] = []
    for q in test_q:
        plan.append(("random", sampler.context(q, "random", rng)))
        plan.append(("topk", sampler.context(q, "similar", rng)))
        plan.append(("one_near", sampler.one_near(q, rng)))
        if q.paraphrases:
            plan.append(("paraphrase", sampler.context(q, "paraphrase", rng)))
        else:
            stats.drop("eval: paraphrase context skipped (no paraphrase)")
    bm25, cosine = sampler.score([ctx for _, ctx in plan])
    rows = []
    for r, (name, ctx) in enumerate(plan):
        row = _row(render, ctx, bm25[r], cosine[r], "eval", sampler)
        row.update(id=f"eval-{name}-{ctx.query.id}", test_set=ctx.query.test_set, eval_context=name)
        rows.append(row)
    return _table(rows, EVAL_SCHEMA)


def _probe_table(test_q: list[Query], sampler: ContextSampler, render: PromptRenderer, size: int,
                 rng: np.random.Generator, stats: StageStats) -> pa.Table:
    in_domain = [q for q in test_q if q.test_set == "id"]
    chosen = sorted(rng.choice(len(in_domain), size=min(size, len(in_domain)), replace=False).tolist())
    rows = []
    outcomes = dict.fromkeys((DERANGED, PARTIAL, UNCHANGED), 0)
    for i in chosen:
        q = in_domain[i]
        similar = sampler.context(q, "paraphrase", rng) if q.paraphrases else sampler.one_near(q, rng)
        if not q.paraphrases:
            stats.drop("probe: nearest neighbour used (no paraphrase)")
        random_ctx = sampler.context(q, "random", rng)
        bm25, cosine = sampler.score([random_ctx, similar])
        zero = _row(render, Context(q, [], [], "zero"), None, None, "probe", sampler)
        rand = _row(render, random_ctx, bm25[0], cosine[0], "probe", sampler)
        sim = _row(render, similar, bm25[1], cosine[1], "probe", sampler)
        examples, outcome = _shuffled(sim["examples"], similar.close_position, rng)
        outcomes[outcome] += 1
        shuffled = dict(sim, examples=examples)
        shuffled["prompt"] = render.prompt(shuffled["examples"], q.source, q.db_id)
        for name, row, position in (("zero", zero, -1), ("random", rand, -1), ("one_similar", sim, similar.close_position),
                                    ("shuffled", shuffled, similar.close_position)):
            rows.append(dict(row, id=f"probe-{name}-{q.id}", test_set="id", probe=name, paraphrase_position=position))
    stats.counters["probe_shuffled"] = outcomes
    return _table(rows, PROBE_SCHEMA)


def _shuffled(examples: list[dict], position: int, rng: np.random.Generator) -> tuple[list[dict], str]:
    """The same examples with their labels moved by value (see stages/assemble/shuffle.py)."""
    order, outcome = shuffled_labels([ex["target"] for ex in examples], position, rng)
    return [dict(ex, target=examples[j]["target"]) for ex, j in zip(examples, order)], outcome
