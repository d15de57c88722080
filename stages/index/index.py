"""The appendable example index: a build's pool that keeps taking labelled pairs, queried with the
build's own retrieval, leakage guard, context code and prompt template.

Nothing about a context is re-implemented here: a query becomes a `stages.assemble.contexts.Query`
and its context is drawn by the build's `ContextSampler` (`topk` = the eval set's topk context,
`one_near` = its one_near context), then rendered by the build's `PromptRenderer`. So a prompt for
an input and its examples is byte-identical to the one `pipeline build` writes for them.

Concurrency: one writer (a thread lock in the process, an exclusive file lock across processes);
readers take the current `_Snapshot` (row count plus views that later appends never touch).
"""
from __future__ import annotations

import fcntl
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from schemas.errors import UserError
from stages.assemble.contexts import ContextSampler, Query
from stages.assemble.prompts import PromptRenderer
from stages.index.files import LOCK, LOG, BaseRows, IndexMeta, read_base, read_meta, write_index
from stages.index.live_bm25 import BM25Snapshot, Growable, LiveBM25
from stages.index.log import AppendLog, LogRecord, read_log
from stages.index.pairs import clean_pairs, has_surrogate
from stages.retrieve.scoring import exact_top_k
from stages.retrieve.stage import group_key, retrieval_tokenizer, source_groups
from stages.text import clean_text, retrieval_view

POLICIES = ("topk", "one_near")
Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class _Snapshot:
    n: int
    bm25: BM25Snapshot
    groups: np.ndarray
    emb: np.ndarray


class _Prefix(Sequence):
    """The first n items of an append-only list, without copying it."""

    def __init__(self, items: list, n: int, fill: Any = None):
        self.items, self.n, self.fill = items, n, fill

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.fill if self.items is None else self.items[i]


class ExampleIndex:
    def __init__(self, folder: Path, meta: IndexMeta, base: BaseRows, embed: Embed):
        self.folder, self.meta, self.embed = Path(folder), meta, embed
        kind = meta.task.kind
        self.tokenize = retrieval_tokenizer(meta.task.retrieval_tokens, kind)
        self.view = retrieval_view(kind)
        self.renderer = PromptRenderer(meta.task)
        self.ids, self.sources, self.targets = base.ids, base.sources, base.targets
        self.bm25 = base.bm25
        self.emb = Growable(np.asarray(base.embeddings, np.float32))
        groups, self._keys = source_groups(self.sources, kind)
        self.groups = Growable(groups)
        self._rows = {_pair_hash(s, t): i for i, (s, t) in enumerate(zip(self.sources, self.targets))}
        self._log: AppendLog | None = None
        self._lock_file = None
        self._writer = threading.Lock()
        self._snap = self._publish()

    @classmethod
    def open(cls, folder: Path, embed: Embed, writable: bool = False) -> "ExampleIndex":
        """Load the base rows and fold in every complete append. Writable: take the writer lock
        (another process serving or appending gets a one-line error) and cut a torn log tail."""
        folder = Path(folder)
        index = cls(folder, read_meta(folder), read_base(folder), embed)
        if writable:
            index._lock_file = _take_writer_lock(folder)
        records, valid = read_log(folder / LOG)
        if records:  # one fold for the whole log: an append costs O(vocabulary) for the idf
            index._apply(LogRecord([i for r in records for i in r.ids], [s for r in records for s in r.sources],
                                   [t for r in records for t in r.targets],
                                   np.concatenate([r.embeddings for r in records])))
        if writable:
            index._log = AppendLog(folder / LOG, valid)
        return index

    def close(self) -> None:
        for handle in (self._log, self._lock_file):
            if handle is not None:
                handle.close()
        self._log = self._lock_file = None

    def __len__(self) -> int:
        return self._snap.n

    def _publish(self) -> _Snapshot:
        n = len(self.ids)
        return _Snapshot(n, self.bm25.snapshot, self.groups.view(n), self.emb.view(n))

    def _apply(self, record: LogRecord) -> None:
        """Make an appended record visible (the caller holds the writer role)."""
        kind = self.meta.task.kind
        first = len(self.ids)
        groups = [self._keys.setdefault(group_key(s, kind), len(self._keys)) for s in record.sources]
        self.emb.extend(record.embeddings.reshape(len(record.ids), -1))
        self.groups.extend(np.asarray(groups, np.int64))
        self.bm25.append(self.tokenize(record.sources))
        for offset, (source, target) in enumerate(zip(record.sources, record.targets)):
            self._rows.setdefault(_pair_hash(source, target), first + offset)
        self.targets.extend(record.targets)
        self.sources.extend(record.sources)
        self.ids.extend(record.ids)
        self._snap = self._publish()

    def contains(self, source: str, target: str) -> bool:
        """Whether the pair, cleaned as an append cleans it, is in the index."""
        source, target = clean_text(source), clean_text(target)
        row = self._rows.get(_pair_hash(source, target))
        return row is not None and row < len(self) and (self.sources[row], self.targets[row]) == (source, target)

    def add(self, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
        """Clean and append pairs as one record, durable when this returns. Pairs the build's
        ingest would reject are reported, not added; a pair already in the index is counted as
        a duplicate. Returns {"added", "duplicates", "rows",
        "rejected": [{"item", "reason", "detail"}]}."""
        if self._log is None:
            raise UserError(f"{self.folder}: index opened read-only; open it writable to append")
        cleaned, rejected = clean_pairs(pairs)
        with self._writer:
            return self._add_clean(cleaned, rejected)

    def _add_clean(self, cleaned: list[tuple[str, str]], rejected: list[dict]) -> dict[str, Any]:
        fresh: dict[tuple[str, str], None] = {}
        for pair in cleaned:
            if not self.contains(*pair):
                fresh.setdefault(pair)
        if fresh:
            n = len(self.ids)
            sources, targets = [s for s, _ in fresh], [t for _, t in fresh]
            vectors = np.asarray(self.embed([self.view(s) for s in sources]), dtype=np.float32)
            record = LogRecord([f"added-{n + i}" for i in range(len(fresh))], sources, targets, vectors)
            self._log.write(record)
            self._apply(record)
        return {"added": len(fresh), "duplicates": len(cleaned) - len(fresh), "rejected": rejected, "rows": len(self)}

    def write_compacted(self, out: Path) -> Path:
        """A new index folder at `out` holding every row of this one with the log folded into the
        base (statistics rebuilt from scratch, equal to the appended ones); this one is left as is."""
        snap = self._snap
        sources = self.sources[: snap.n]
        rows = BaseRows(self.ids[: snap.n], sources, self.targets[: snap.n], snap.emb,
                        LiveBM25.from_corpus(self.tokenize(sources)))
        return write_index(Path(out), self.meta.model_copy(update={"base_rows": snap.n}), rows)

    def render(self, source: str, examples: list[dict]) -> str:
        """The prompt the build writes for this input and these examples, in this order."""
        return self.renderer.prompt(examples, source)

    def query(self, text: str, k: int = 4, policy: str = "topk") -> dict[str, Any]:
        """Retrieve a context for `text` and render its prompt: {"input", "examples", "prompt"}.
        Examples carry id, source, target, origin, bm25 and cosine, as the build's rows do."""
        if policy not in POLICIES:
            raise UserError(f"policy {policy!r} is unknown; use one of {', '.join(POLICIES)}")
        source = clean_text(str(text))
        if not source:
            raise UserError("input is empty once cleaned; send a non-empty input")
        if has_surrogate(source):
            raise UserError("input holds a lone surrogate (an unpaired \\ud800-\\udfff escape); "
                            "send valid Unicode text")
        snap = self._snap
        group = self._keys.get(group_key(source, self.meta.task.kind), -1)
        scores = snap.bm25.scores(self.bm25.term_counts(self.tokenize([source])[0]))
        same = np.flatnonzero(snap.groups == group) if group >= 0 else np.empty(0, np.int64)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= snap.n - len(same):
            raise UserError(f"k must be an integer in [1, {snap.n - len(same)}] (the index rows other than "
                            f"the input's own), got {k!r}")
        scores[same] = -np.inf
        candidates, _ = exact_top_k(scores, k)
        vector = np.asarray(self.embed([self.view(source)]), dtype=np.float32)[0]
        query = Query("query", source, "", [], vector, group, candidates)
        sampler = ContextSampler(_Prefix(self.ids, snap.n), _Prefix(self.sources, snap.n),
                                 _Prefix(self.targets, snap.n), snap.emb, snap.groups, None, k, self.tokenize,
                                 _Prefix(None, snap.n, ""))
        rng = np.random.default_rng([self.meta.seed, 35, _input_seed(source)])
        context = sampler.one_near(query, rng) if policy == "one_near" else sampler.context(query, "similar", rng)
        slots = np.asarray(context.slots, dtype=np.int64)
        examples = sampler.examples(context, scores[slots].astype(np.float32),
                                    (snap.emb[slots] @ vector).astype(np.float32))
        for example in examples:
            example.pop("db_id", None)
        return {"input": source, "examples": examples, "prompt": self.render(source, examples)}


def _pair_hash(source: str, target: str) -> int:
    digest = hashlib.blake2b(f"{source}\0{target}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _input_seed(source: str) -> int:
    """Same input, same random examples: a query's draws are seeded by its own text."""
    return int.from_bytes(hashlib.sha256(source.encode("utf-8", "surrogatepass")).digest()[:8], "little")


def _take_writer_lock(folder: Path):
    handle = open(folder / LOCK, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"{folder}: another process is appending to this index (a running `pipeline serve`?); "
                        "send the pairs to its /v1/feedback endpoint or stop it first") from None
    return handle
