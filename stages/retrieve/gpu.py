"""The GPU variant of BM25 top-k scoring: one sparse x dense product and torch.topk per block.

Kept apart from the CPU scorer because it is the only part that imports torch; its float32
candidates go through the same exact float64 re-scoring on the CPU (`BM25Index._finish`), so the
device never changes which neighbours are chosen. Untested without a GPU.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


class CudaScorer:
    """The (docs x terms) BM25 weights uploaded once; `top_width` scores one query block."""

    def __init__(self, weights: sp.csr_matrix):
        import torch

        w = weights.astype(np.float32)
        self.weights = torch.sparse_csr_tensor(
            torch.from_numpy(w.indptr.astype(np.int64)), torch.from_numpy(w.indices.astype(np.int64)),
            torch.from_numpy(w.data), size=w.shape).to("cuda")

    def top_width(self, queries: sp.csr_matrix, excluded: tuple, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Best `width` docs per query row (indices, float32 scores), excluded cells at -inf."""
        import torch

        dense_queries = torch.from_numpy(queries.astype(np.float32).toarray()).to("cuda")
        block = (self.weights @ dense_queries.T).T.contiguous()
        block[torch.from_numpy(excluded[0]).cuda(), torch.from_numpy(excluded[1]).cuda()] = -torch.inf
        vals, idx = torch.topk(block, width, dim=1, largest=True, sorted=True)
        return idx.cpu().numpy().astype(np.int64), vals.cpu().numpy()
