"""Exact BM25 retrieval over a whole pool at once, scored exactly as rank_bm25's BM25Okapi scores.

Why not rank_bm25 itself: it loops in Python over every document for every query token, about
0.5 s per query at a 50k pool, i.e. hours for the pipeline's 50k targets. Here the BM25 weight of
every (doc, term) pair is computed once into a sparse matrix, so a query's scores are one sparse
product. For top-k, a batch of queries is scored in float32: the rare terms by a sparse product,
the few terms found in many docs by one dense GEMM. The float32 block only *proposes* a few more
than k candidates; they are re-scored exactly in float64, and any row whose float32 margin cannot
prove the candidates hold the exact top-k (near ties at the boundary) is redone exactly in full.
So results equal rank_bm25's scores (to float rounding) with a deterministic tie-break.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from typing import Iterable

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import sgemm

from schemas.errors import UserError
from stages.retrieve.gpu import CudaScorer, cuda_available
from stages.retrieve.scoring import bm25_idf, bm25_weight, exact_top_k, top_width

_SPARE = 16  # candidates proposed beyond k, so a few near ties rarely force the exact fallback
_BLOCK_FLOATS = 4_000_000  # float32 cells in one (queries x docs) score block: ~16 MB, cache friendly
_HEAD_DF = 0.05  # terms in at least this share of docs are scored densely (GEMM), the rest sparsely
_HEAD_MAX = 64


@functools.lru_cache(maxsize=1)
def _word_pattern() -> re.Pattern:
    """`[\\w + combining marks + ZWNJ/ZWJ]+`, built once on first use from the Unicode tables.
    Marks are only assigned in planes 0, 1 and 14, so only those are scanned (~0.1 s)."""
    code_points = [*range(0x20000), *range(0xE0000, 0xF0000)]
    marks = [cp for cp in code_points if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me")]
    ranges, start = [], 0
    for i in range(1, len(marks) + 1):
        if i == len(marks) or marks[i] != marks[i - 1] + 1:
            ranges.append(f"{re.escape(chr(marks[start]))}-{re.escape(chr(marks[i - 1]))}")
            start = i
    return re.compile(r"[\w\u200c\u200d" + "".join(ranges) + "]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words: maximal runs of word characters (`\\w`: letters, digits, underscore) and
    combining marks (Unicode categories Mn, Mc, Me) plus the zero-width (non-)joiners U+200C/U+200D.

    Why the marks: Devanagari and Tamil write vowel signs and the virama as combining marks, which
    `\\w` does not match, so a plain `\\w+` cuts "हिन्दी" into pieces. Text is NFC-normalised first so
    composed and decomposed spellings give the same tokens. Single-character words are kept.
    Everything else (punctuation, symbols, spaces) separates words and is dropped.
    """
    return _word_pattern().findall(unicodedata.normalize("NFC", text).lower())


def tokenize_many(texts: list[str]) -> list[list[str]]:
    """`tokenize` for each text, in order."""
    return [tokenize(text) for text in texts]


class BM25Index:
    """BM25Okapi over a tokenized corpus; same idf (with rank_bm25's epsilon floor) and weights."""

    def __init__(self, corpus: list[list[str]], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        counts = self._count_matrix(corpus)
        self.n_docs = counts.shape[0]
        self.doc_len = np.asarray(counts.sum(axis=1)).ravel()
        self.avgdl = float(self.doc_len.mean()) if self.n_docs else 0.0
        self.idf = self._idf(np.bincount(counts.indices, minlength=counts.shape[1]))
        self.weights = self._weights(counts)  # (docs x terms) float64: idf * saturated tf
        self._fast: dict | None = None  # float32 head/tail split for topk, built on first use
        self._cuda_scorer = None

    def _count_matrix(self, corpus: list[list[str]]) -> sp.csr_matrix:
        """Doc x term counts; term ids ordered by document frequency (most frequent first)."""
        if isinstance(corpus, str) or not isinstance(corpus, (list, tuple)):
            raise UserError("BM25 corpus: expected a list of token lists; tokenize texts with tokenize_many first")
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for i, doc in enumerate(corpus):
            if isinstance(doc, str) or not isinstance(doc, (list, tuple)):
                raise UserError(f"BM25 corpus row {i}: expected a list of tokens, got {type(doc).__name__}; "
                                "tokenize texts with tokenize_many first")
            cols.extend(vocab.setdefault(tok, len(vocab)) for tok in doc)
            rows.extend([i] * len(doc))
        shape = (len(corpus), len(vocab))
        counts = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=shape)
        counts.sum_duplicates()
        order = np.argsort(-np.bincount(counts.indices, minlength=shape[1]), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.vocab = {tok: int(rank[i]) for tok, i in vocab.items()}
        counts = sp.csr_matrix((counts.data, rank[counts.indices], counts.indptr), shape=shape)
        counts.sort_indices()
        return counts

    def _idf(self, df: np.ndarray) -> np.ndarray:
        idf, self.average_idf = bm25_idf(df, self.n_docs, self.epsilon)
        return idf

    def _weight(self, idf: np.ndarray, tf: np.ndarray, dl: np.ndarray) -> np.ndarray:
        return bm25_weight(idf, tf, dl, self.avgdl, self.k1, self.b)

    def _weights(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        dl = np.repeat(self.doc_len, np.diff(counts.indptr))
        data = self._weight(self.idf[counts.indices], counts.data, dl) if counts.nnz else counts.data
        return sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)

    def query_matrix(self, queries: list[list[str]]) -> sp.csr_matrix:
        """The queries as term-count rows, what `topk` scores; public for engines (see `topk`)."""
        return self._query_matrix(queries)

    def _query_matrix(self, queries: list[list[str]]) -> sp.csr_matrix:
        """Query x term counts (a repeated token counts each time); unknown tokens score 0, so dropped."""
        if isinstance(queries, str) or not isinstance(queries, (list, tuple)):
            raise UserError("BM25 queries: expected a list of token lists; tokenize texts with tokenize_many first")
        rows, cols = [], []
        for i, query in enumerate(queries):
            if isinstance(query, str) or not isinstance(query, (list, tuple)):
                raise UserError(f"BM25 query {i}: expected a list of tokens, got {type(query).__name__}")
            ids = [self.vocab[tok] for tok in query if tok in self.vocab]
            cols.extend(ids)
            rows.extend([i] * len(ids))
        matrix = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(queries), len(self.vocab)))
        matrix.sum_duplicates()
        return matrix

    def get_scores(self, query: list[str]) -> np.ndarray:
        """float64 BM25 score of every corpus doc for one query (what rank_bm25's get_scores returns)."""
        return np.asarray(self.weights @ self._query_matrix([query]).T.toarray()).ravel()

    def _pair_scores(self, query_rows: sp.csr_matrix, doc_ids: np.ndarray) -> np.ndarray:
        """Exact float64 scores of doc_ids[i, j] for query row i; ids must be valid (>= 0)."""
        n, j = doc_ids.shape
        repeated = query_rows[np.repeat(np.arange(n), j)]
        products = repeated.multiply(self.weights[doc_ids.ravel()])
        return np.asarray(products.sum(axis=1)).reshape(n, j)

    def score_pairs(self, queries: list[list[str]], doc_ids: np.ndarray) -> np.ndarray:
        """(n, j) float64 scores of the given pool docs per query; an id of -1 (topk padding) gives -inf."""
        ids = np.asarray(doc_ids, dtype=np.int64)
        if ids.ndim != 2 or len(ids) != len(queries):
            raise UserError(f"score_pairs: doc_ids must have shape (len(queries)={len(queries)}, j), got {ids.shape}")
        if ((ids < -1) | (ids >= self.n_docs)).any():
            raise UserError(f"score_pairs: doc ids must lie in [0, {self.n_docs}) or be -1 (padding)")
        scores = self._pair_scores(self._query_matrix(queries), np.maximum(ids, 0)) if ids.size else ids * 0.0
        scores[ids < 0] = -np.inf
        return scores

    def score_external(self, query: list[str], doc: list[str]) -> float:
        """Score of a doc outside the corpus (a paraphrase) with the corpus idf and avgdl; unknown
        terms score 0, as they would in rank_bm25."""
        tf, score = Counter(doc), 0.0
        for tok in query:
            if tok in self.vocab and tok in tf:
                score += self._weight(self.idf[self.vocab[tok]], tf[tok], len(doc))
        return float(score)

    def _fast_parts(self) -> dict:
        """float32 copies split by document frequency: dense head rows (H x docs) for a GEMM and the
        sparse tail transposed (terms x docs) for a sparse product."""
        if self._fast is None:
            df = np.bincount(self.weights.indices, minlength=self.weights.shape[1])
            head = int(min(_HEAD_MAX, np.count_nonzero(df >= _HEAD_DF * max(self.n_docs, 1))))
            w32 = self.weights.astype(np.float32)
            self._fast = {"head": head, "dense": np.ascontiguousarray(w32[:, :head].toarray().T),
                          "tail": w32[:, head:].T.tocsr(),
                          "max_abs": abs(self.weights).max(axis=0).toarray().ravel()}
        return self._fast

    def _cpu_block(self, queries: sp.csr_matrix, buffer: np.ndarray) -> np.ndarray:
        """float32 scores (queries x docs) into `buffer`: sparse product for the tail, GEMM adds the head."""
        parts, block = self._fast_parts(), buffer[: queries.shape[0]]
        q32 = queries.astype(np.float32)
        (q32[:, parts["head"]:] @ parts["tail"]).toarray(out=block)
        if parts["head"]:
            head = q32[:, : parts["head"]].toarray()
            result = sgemm(1.0, parts["dense"].T, head.T, beta=1.0, c=block.T, overwrite_c=True)
            if not np.shares_memory(result, block):  # pragma: no cover - BLAS chose to copy
                block[...] = result.T
        return block

    def query_step(self, cuda: bool = False) -> int:
        """Queries per scoring block of `topk`. Why public: the float32 proposals of a block depend on
        its shape, so an engine that splits queries across workers cuts at multiples of this."""
        return max(1, min(4096, _BLOCK_FLOATS // max(self.n_docs, 1))) * (8 if cuda else 1)

    def prepare(self) -> "BM25Index":
        """Builds the float32 scoring parts now, so copies sent to other processes carry them."""
        if self.n_docs:
            self._fast_parts()
        return self

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cuda_scorer": None}  # a GPU copy never travels between processes

    def topk(self, queries: list[list[str]] | sp.csr_matrix, k: int, exclude: list[set[int]] | None = None,
             progress: bool = False, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """Best k docs per query: (int64 indices, float32 scores), shape (n, k), best first, ties by
        lower index. `exclude[i]` lists doc indices query i must never get. Where fewer than k docs
        are left the row is padded with index -1 and score -inf. device="cuda" scores on the GPU
        when torch sees one (same exact re-scoring on the CPU afterwards). `queries` may also be rows
        of `query_matrix` (what an engine's workers get: they need no vocabulary)."""
        from tqdm.auto import tqdm

        query_matrix = queries if sp.issparse(queries) else self._query_matrix(queries)
        n, k = query_matrix.shape[0], self._check_k(k)
        excluded = self._check_exclude(exclude, n)
        out_idx, out_scores = np.full((n, k), -1, np.int64), np.full((n, k), -np.inf)
        width = min(k + _SPARE, self.n_docs)
        if n == 0 or k == 0 or self.n_docs == 0:
            return out_idx, out_scores.astype(np.float32)
        use_cuda = device.startswith("cuda") and cuda_available()
        step = self.query_step(use_cuda)
        buffer = None if use_cuda else np.empty((min(step, n), self.n_docs), np.float32)
        with tqdm(total=n, unit="query", desc="BM25 top-k", disable=not progress) as bar:
            for start in range(0, n, step):
                rows = slice(start, min(start + step, n))
                batch, batch_excluded = query_matrix[rows], excluded[rows]
                cells = _batch_exclusions(batch_excluded)
                if use_cuda:
                    if self._cuda_scorer is None:
                        self._cuda_scorer = CudaScorer(self.weights)
                    idx, vals = self._cuda_scorer.top_width(batch, cells, width)
                else:
                    block = self._cpu_block(batch, buffer)
                    block[cells] = -np.inf
                    idx, vals = top_width(block, width)
                self._finish(batch, idx, vals, k, batch_excluded, out_idx[rows], out_scores[rows])
                bar.update(rows.stop - rows.start)
        return out_idx, out_scores.astype(np.float32)

    def _finish(self, batch: sp.csr_matrix, idx: np.ndarray, vals: np.ndarray, k: int,
                excluded: list[list[int]], out_idx: np.ndarray, out_scores: np.ndarray) -> None:
        """Exact top-k from the float32 candidates; rows the float32 margin cannot settle are redone
        in full float64. Proof of the margin test: every non-candidate's exact score is at most
        last + err < kth - err, below k candidates, so it cannot enter the exact top-k."""
        kk, width = min(k, idx.shape[1]), idx.shape[1]
        max_abs = self._fast_parts()["max_abs"]
        err = (np.diff(batch.indptr) + 8) * 2.0 ** -22 * (abs(batch) @ max_abs)  # float32 error bound
        settled = (vals[:, width - 1] < vals[:, kk - 1] - 2 * err) | (width == self.n_docs)
        exact = np.where(np.isfinite(vals), self._pair_scores(batch, idx), -np.inf)
        order = np.lexsort((idx, -exact), axis=-1)[:, :kk]
        out_idx[:, :kk] = np.take_along_axis(idx, order, 1)
        out_scores[:, :kk] = np.take_along_axis(exact, order, 1)
        unsettled = np.flatnonzero(~settled)
        if len(unsettled):
            full = (batch[unsettled] @ self.weights.T).toarray()
            for row, scores in zip(unsettled, full):
                scores[excluded[row]] = -np.inf
                chosen, best = exact_top_k(scores, k)
                out_idx[row], out_scores[row] = -1, -np.inf
                out_idx[row, : len(chosen)], out_scores[row, : len(chosen)] = chosen, best
        padding = ~np.isfinite(out_scores)
        out_idx[padding], out_scores[padding] = -1, -np.inf

    @staticmethod
    def _check_k(k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise UserError(f"BM25 top-k: k must be a non-negative integer, got {k!r}")
        return int(k)

    def _check_exclude(self, exclude: list[Iterable[int]] | None, n: int) -> list[list[int]]:
        if exclude is None:
            return [[] for _ in range(n)]
        if len(exclude) != n:
            raise UserError(f"BM25 top-k: exclude has {len(exclude)} entries for {n} queries; give one set per query")
        checked = []
        for i, doc_ids in enumerate(exclude):
            ids = [int(d) for d in doc_ids]
            if any(d < 0 or d >= self.n_docs for d in ids):
                raise UserError(f"BM25 top-k: exclude[{i}] holds an index outside [0, {self.n_docs})")
            checked.append(ids)
        return checked


def _batch_exclusions(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(row-in-batch, doc) index arrays of the excluded cells of one batch."""
    row_ids = np.repeat(np.arange(len(lists)), [len(ids) for ids in lists])
    doc_ids = np.fromiter((d for ids in lists for d in ids), np.int64, count=len(row_ids))
    return row_ids, doc_ids


def bm25_topk(queries: list[list[str]], corpus: list[list[str]], k: int,
              exclude: list[set[int]] | None = None, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Top-k corpus docs per query by BM25Okapi (k1=1.5, b=0.75, epsilon=0.25), as rank_bm25 scores
    them: int64 indices and float32 scores, shape (len(queries), k), best first, ties by lower
    index. `exclude[i]` = corpus indices query i must never get (the leakage guard). Rows with
    fewer than k eligible docs are padded with index -1 and score -inf."""
    return BM25Index(corpus).topk(queries, k, exclude, device=device)
