"""BM25 scoring pieces shared by the batch retriever (stages.retrieve.bm25) and the appendable
example index (stages.index.live_bm25): rank_bm25's idf, the grid-rounded term weight that makes
float64 sums exact, and an O(n) exact top-k with a deterministic tie-break."""
from __future__ import annotations

import numpy as np

_CHUNK = 64  # top-k prefilter: cells per chunk whose maximum is taken
_GRID = 2.0 ** 30  # weights are multiples of 1/_GRID, so float64 sums of them are exact (see bm25_weight)


def bm25_idf(df: np.ndarray, n_docs: int, epsilon: float) -> tuple[np.ndarray, float]:
    """rank_bm25's idf per term, log((N - n + .5) / (n + .5)), and the mean idf taken before the
    negatives are floored to epsilon * that mean. Returns (idf, mean)."""
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    average = float(idf.sum() / len(idf)) if len(idf) else 0.0
    idf[idf < 0] = epsilon * average
    return idf, average


def bm25_weight(idf: np.ndarray, tf: np.ndarray, dl: np.ndarray, avgdl: float, k1: float, b: float) -> np.ndarray:
    """idf * saturated tf, rounded to a multiple of 2^-30 (< 5e-10 off rank_bm25). Why: sums of
    such values (below 2^22) are exact in float64, so a score is the same bit for bit whichever
    path or order sums it, and docs with equal scores tie exactly, for the index tie-break."""
    return bm25_weight_normed(idf, tf, bm25_length_norm(dl, avgdl, k1, b), k1)


def bm25_length_norm(dl: np.ndarray, avgdl: float, k1: float, b: float) -> np.ndarray:
    """The per-document part of the saturation, k1 * (1 - b + b * dl / avgdl), which a caller
    scoring many terms against the same statistics can compute once."""
    return k1 * (1 - b + b * dl / avgdl)


def bm25_weight_normed(idf: np.ndarray, tf: np.ndarray, norm: np.ndarray, k1: float) -> np.ndarray:
    """`bm25_weight` from a precomputed `bm25_length_norm`, bit for bit the same values."""
    return np.round(idf * (tf * (k1 + 1) / (tf + norm)) * _GRID) / _GRID


def exact_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of one float64 row: best score first, ties by lower index (O(n), no full sort).
    A long row is first cut to the cells at or above the k-th largest of its chunk maxima: k
    cells reach that bound, so every top-k cell (and every tie at the k-th score) is kept, and
    one max-per-chunk pass costs a fraction of a partition of the whole row."""
    kk = min(k, len(scores))
    if kk == 0:
        return np.empty(0, np.int64), np.empty(0)
    if len(scores) > 8 * _CHUNK * kk:
        maxima = np.maximum.reduceat(scores, np.arange(0, len(scores), _CHUNK))
        kept = np.flatnonzero(scores >= np.partition(maxima, len(maxima) - kk)[len(maxima) - kk])
        chosen, values = _select(scores[kept], kk)
        return kept[chosen], values
    return _select(scores, kk)


def _select(scores: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    kth = np.partition(scores, len(scores) - kk)[len(scores) - kk]
    above = np.flatnonzero(scores > kth)
    chosen = np.concatenate([above, np.flatnonzero(scores == kth)[: kk - len(above)]])
    chosen = chosen[np.lexsort((chosen, -scores[chosen]))]
    return chosen, scores[chosen]


def top_width(block: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of each row's `width` largest values, largest first (which of several
    equal values is taken is free: the caller re-checks ties). Why chunks: a full argpartition per
    row costs ~4x one max-per-chunk pass; the `width` chunks with the largest maxima hold every
    value above the width-th largest chunk maximum, hence all of the row's top `width` values."""
    n_chunks = -(-block.shape[1] // _CHUNK)
    if n_chunks <= 2 * width:
        cand = np.broadcast_to(np.arange(block.shape[1]), block.shape)
        values = block
    else:
        maxima = np.maximum.reduceat(block, np.arange(0, block.shape[1], _CHUNK), axis=1)
        chunks = np.argpartition(maxima, n_chunks - width, axis=1)[:, n_chunks - width:]
        cand = (chunks[:, :, None] * _CHUNK + np.arange(_CHUNK)).reshape(len(block), -1)
        beyond = cand >= block.shape[1]  # the last chunk may be short: its missing cells read -inf
        cand = np.minimum(cand, block.shape[1] - 1)
        values = np.take_along_axis(block, cand, axis=1)
        values[beyond] = -np.inf
    part = np.argpartition(values, values.shape[1] - width, axis=1)[:, values.shape[1] - width:]
    top_values = np.take_along_axis(values, part, axis=1)
    order = np.argsort(-top_values, axis=1, kind="stable")
    return np.take_along_axis(cand, part, 1)[np.arange(len(block))[:, None], order], \
        np.take_along_axis(top_values, order, 1)
