"""Exact BM25 (rank_bm25's BM25Okapi) over a corpus that keeps growing, for the example index.

Why not `BM25Index`: it stores idf * saturated tf per (doc, term), and one appended document
changes N, avgdl and every idf, i.e. every stored weight. Here only the raw statistics are kept
(term postings with their tf, doc lengths, document frequencies) and a query weighs just the
postings of its own terms, with the idf and avgdl of the moment. Weights go through
`bm25_weight`, which rounds them to a 2^-30 grid, so a score is the same bit for bit however the
postings are split: after any number of appends it equals a rebuild from scratch on the same docs.

Postings live in two parts: a term-major `base` (built at creation, rebuilt by `_merge`) and a
small doc-major `delta` of appended docs, scanned whole per query and folded into the base once
it grows past an eighth of it. Readers take a `BM25Snapshot` (immutable, or views of append-only
buffers below their length), so a query never sees half an append.
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

import numpy as np

from stages.retrieve.scoring import bm25_idf, bm25_length_norm, bm25_weight_normed

_MERGE_MIN = 65_536  # delta postings tolerated before a merge, however small the base


class Growable:
    """An append-only numpy buffer. `view(n)` keeps showing the same first n rows whatever is
    appended later: a full buffer is replaced by a bigger copy, never written over in place."""

    def __init__(self, initial: np.ndarray, spare: int | None = None):
        initial = np.asarray(initial)
        spare = max(1024, len(initial) // 4) if spare is None else spare
        self._buf = np.empty((len(initial) + spare, *initial.shape[1:]), initial.dtype)
        self._buf[: len(initial)] = initial
        self.size = len(initial)

    def extend(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, self._buf.dtype)
        need = self.size + len(rows)
        if need > len(self._buf):
            bigger = np.empty((max(need, len(self._buf) * 3 // 2), *self._buf.shape[1:]), self._buf.dtype)
            bigger[: self.size] = self._buf[: self.size]
            self._buf = bigger
        self._buf[self.size: need] = rows
        self.size = need

    def view(self, n: int | None = None) -> np.ndarray:
        return self._buf[: self.size if n is None else n]


@dataclass(frozen=True)
class BM25Snapshot:
    """The statistics as of one moment; `scores` is what rank_bm25's get_scores returns then."""

    n_docs: int
    avgdl: float
    idf: np.ndarray  # per term id known at this moment
    indptr: np.ndarray  # base postings, term-major: docs[indptr[t]:indptr[t + 1]] hold term t
    docs: np.ndarray
    tfs: np.ndarray
    delta_docs: np.ndarray  # appended postings, one (doc, term, tf) per entry
    delta_terms: np.ndarray
    delta_tfs: np.ndarray
    doc_len: np.ndarray
    k1: float
    b: float

    @functools.cached_property
    def length_norm(self) -> np.ndarray:
        """Computed on the first query of a snapshot, shared by every later one."""
        return bm25_length_norm(self.doc_len.astype(np.float64), self.avgdl, self.k1, self.b)

    def scores(self, term_counts: dict[int, int]) -> np.ndarray:
        """float64 score of every doc for a query given as {term id: times it occurs in the query};
        ids this snapshot does not know score 0, as unknown words do in rank_bm25. The postings
        of all terms are summed by one bincount (exact whatever the order: see bm25_weight)."""
        known = {t: c for t, c in term_counts.items() if t < len(self.idf)}
        docs, weights = [], []
        for term, count in known.items():
            if term + 1 < len(self.indptr):
                lo, hi = self.indptr[term], self.indptr[term + 1]
                docs.append(self.docs[lo:hi])
                weights.append(count * self._weight(self.idf[term], self.tfs[lo:hi], docs[-1]))
        if known and len(self.delta_terms):
            hit = np.flatnonzero(np.isin(self.delta_terms, np.fromiter(known, np.int64, len(known))))
            terms = self.delta_terms[hit]
            docs.append(self.delta_docs[hit])
            counts = np.array([known[int(t)] for t in terms], dtype=np.float64)
            weights.append(counts * self._weight(self.idf[terms], self.delta_tfs[hit], docs[-1]))
        if not docs:
            return np.zeros(self.n_docs)
        return np.bincount(np.concatenate(docs), np.concatenate(weights), minlength=self.n_docs)

    def _weight(self, idf, tf: np.ndarray, docs: np.ndarray) -> np.ndarray:
        return bm25_weight_normed(idf, tf.astype(np.float64), self.length_norm[docs], self.k1)


def _triplets(corpus: list[list[str]], vocab: dict[str, int], first_doc: int) -> tuple[np.ndarray, ...]:
    """(doc, term, tf) of each distinct term of each doc, new terms added to `vocab` in order of
    first appearance (so ids do not depend on how the docs were split into appends), and lengths."""
    docs, terms, tfs, lengths = [], [], [], []
    for i, tokens in enumerate(corpus):
        counts = Counter(tokens)
        terms.extend(vocab.setdefault(tok, len(vocab)) for tok in counts)
        tfs.extend(counts.values())
        docs.extend([first_doc + i] * len(counts))
        lengths.append(len(tokens))
    as_ids = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return as_ids(docs), as_ids(terms), np.asarray(tfs, dtype=np.int32), as_ids(lengths)


def term_major(docs: np.ndarray, terms: np.ndarray, tfs: np.ndarray, n_terms: int) -> tuple[np.ndarray, ...]:
    """(indptr, docs, tfs) sorted by term, docs ascending within a term (the sort is stable and
    the input lists docs in order)."""
    order = np.argsort(terms, kind="stable")
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=n_terms), out=indptr[1:])
    return indptr, docs[order], tfs[order]


class LiveBM25:
    """The writer side: `append` adds docs and publishes a new `snapshot`. One writer at a time
    (the example index holds its lock); any number of readers, each on the snapshot it took."""

    def __init__(self, vocab: list[str], indptr: np.ndarray, docs: np.ndarray, tfs: np.ndarray,
                 doc_len: np.ndarray, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self.vocab = {term: i for i, term in enumerate(vocab)}
        self.base = (np.asarray(indptr, np.int64), np.asarray(docs, np.int64), np.asarray(tfs, np.int32))
        self.doc_len = Growable(np.asarray(doc_len, np.int64))
        self._new_delta()
        self._df = np.diff(self.base[0])
        self._total = int(self.doc_len.view().sum())
        self.snapshot = self._publish()

    @classmethod
    def from_corpus(cls, corpus: list[list[str]], **params) -> "LiveBM25":
        vocab: dict[str, int] = {}
        docs, terms, tfs, lengths = _triplets(corpus, vocab, 0)
        return cls(list(vocab), *term_major(docs, terms, tfs, len(vocab)), lengths, **params)

    def _new_delta(self) -> None:
        """Fresh buffers: readers of an older snapshot keep the old ones."""
        self.delta = tuple(Growable(np.empty(0, dtype)) for dtype in (np.int64, np.int64, np.int32))

    def terms(self) -> list[str]:
        """Term strings by id (what `save` needs to rebuild `vocab`)."""
        return list(self.vocab)

    def term_counts(self, tokens: list[str]) -> dict[int, int]:
        counts: dict[int, int] = {}
        for tok in tokens:
            term = self.vocab.get(tok)
            if term is not None:
                counts[term] = counts.get(term, 0) + 1
        return counts

    def append(self, corpus: list[list[str]]) -> BM25Snapshot:
        n_docs = self.doc_len.size
        docs, terms, tfs, lengths = _triplets(corpus, self.vocab, n_docs)
        df = np.zeros(len(self.vocab), dtype=np.int64)
        df[: len(self._df)] = self._df
        np.add.at(df, terms, 1)
        self._df, self._total = df, self._total + int(lengths.sum())
        for buffer, values in zip(self.delta, (docs, terms, tfs)):
            buffer.extend(values)
        self.doc_len.extend(lengths)
        if self.delta[0].size > max(_MERGE_MIN, len(self.base[1]) // 8):
            self._merge()
        self.snapshot = self._publish()
        return self.snapshot

    def _merge(self) -> None:
        """Fold the delta into a new term-major base (appended docs come after every base doc)."""
        indptr, docs, tfs = self.base
        base_terms = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        delta_docs, delta_terms, delta_tfs = (buffer.view() for buffer in self.delta)
        order = np.lexsort((np.concatenate([docs, delta_docs]), np.concatenate([base_terms, delta_terms])))
        all_terms = np.concatenate([base_terms, delta_terms])[order]
        indptr = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(all_terms, minlength=len(self.vocab)), out=indptr[1:])
        self.base = (indptr, np.concatenate([docs, delta_docs])[order], np.concatenate([tfs, delta_tfs])[order])
        self._new_delta()

    def _publish(self) -> BM25Snapshot:
        n_docs = self.doc_len.size
        idf, _ = bm25_idf(self._df.astype(np.float64), n_docs, self.epsilon)
        avgdl = self._total / n_docs if n_docs else 0.0
        delta_docs, delta_terms, delta_tfs = (buffer.view() for buffer in self.delta)
        return BM25Snapshot(n_docs, avgdl, idf, *self.base, delta_docs, delta_terms, delta_tfs,
                            self.doc_len.view(), self.k1, self.b)
