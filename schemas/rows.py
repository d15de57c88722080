"""Row records of every table the pipeline writes, each mirrored by an explicit pyarrow schema.

The pydantic models document and validate single rows (tests, the trainer, user code); the
pyarrow schemas are what is actually written, so column order and types never drift between
builds. Keep the two in step: `tests/test_schemas.py` checks that they name the same fields.
"""
from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, Field

Origin = Literal["random", "similar", "near", "paraphrase"]
ContextKind = Literal["zero", "random", "similar", "near", "paraphrase"]
Regime = Literal["zero", "random", "similar", "contrastive"]
EvalContext = Literal["random", "topk", "one_near", "paraphrase"]
ProbeKind = Literal["zero", "random", "one_similar", "shuffled"]
TestSet = Literal["id", "ood"]

REGIMES: tuple[str, ...] = ("zero", "random", "similar", "contrastive")
EVAL_CONTEXTS: tuple[str, ...] = ("random", "topk", "one_near", "paraphrase")
PROBE_KINDS: tuple[str, ...] = ("zero", "random", "one_similar", "shuffled")


class Pair(BaseModel):
    """One cleaned labelled pair of the training pool or of a test set. `db_id` names the database
    an SQL pair is asked against ("" for tasks without databases)."""

    id: str
    source: str
    target: str
    db_id: str = ""


class TestPair(Pair):
    test_set: TestSet


class Example(BaseModel):
    """One in-context example, with where it came from and how close it is to the target."""

    id: str
    source: str
    target: str
    origin: Origin
    bm25: float
    cosine: float
    db_id: str = ""


class TrainRow(BaseModel):
    id: str
    target_id: str
    source: str
    target: str
    db_id: str = ""  # the database the prompt's schema and the SQL belong to; "" for non-SQL tasks
    regime: str
    context_kind: ContextKind
    examples: list[Example] = Field(default_factory=list)
    max_sim: float
    prompt: str
    completion: str


class EvalRow(TrainRow):
    test_set: TestSet
    eval_context: EvalContext


class ProbeRow(TrainRow):
    test_set: TestSet
    probe: ProbeKind
    paraphrase_position: int  # index of the similar example in `examples`, -1 when none


PAIR_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("db_id", pa.string(), nullable=False),
])

TEST_PAIR_SCHEMA = PAIR_SCHEMA.append(pa.field("test_set", pa.string(), nullable=False))

EXAMPLE_TYPE = pa.struct([
    pa.field("id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("target", pa.string()),
    pa.field("origin", pa.string()),
    pa.field("bm25", pa.float32()),
    pa.field("cosine", pa.float32()),
    pa.field("db_id", pa.string()),
])

TRAIN_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("target_id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("target", pa.string()),
    pa.field("db_id", pa.string()),
    pa.field("regime", pa.string()),
    pa.field("context_kind", pa.string()),
    pa.field("examples", pa.list_(EXAMPLE_TYPE)),
    pa.field("max_sim", pa.float32()),
    pa.field("prompt", pa.string()),
    pa.field("completion", pa.string()),
])

EVAL_SCHEMA = TRAIN_SCHEMA.append(pa.field("test_set", pa.string())).append(
    pa.field("eval_context", pa.string()))

PROBE_SCHEMA = TRAIN_SCHEMA.append(pa.field("test_set", pa.string())).append(
    pa.field("probe", pa.string())).append(pa.field("paraphrase_position", pa.int32()))

PARAPHRASE_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("paraphrases", pa.list_(pa.string()), nullable=False),
])

# SQL paraphrases change the query's literals, so each one carries its own SQL (`targets`,
# aligned with `paraphrases`); every other task's paraphrases keep their source's target.
SQL_PARAPHRASE_SCHEMA = PARAPHRASE_SCHEMA.append(pa.field("targets", pa.list_(pa.string()), nullable=False))

REJECT_FIELDS = ("file", "line", "reason", "detail")
