"""`symbol-runs`: the similarity of `align-synth` inputs, as an embedding.

An align-synth output is made of per-symbol emissions that depend on each symbol's neighbours in
the sorted symbol set, so two inputs are as useful to each other as the runs of neighbouring
symbols they share. Each input becomes the multi-hot vector of its (previous, symbol, next)
triples over the sorted set; the cosine is then shared triples / sqrt(|A| |B|): 1.0 for any
reshuffle of the same set, about 0 for unrelated sets, in between for a shared run. Plain symbol
overlap would rate most random pairs of an 8-symbol alphabet as "similar".
"""
from __future__ import annotations

import hashlib

import numpy as np

DIM = 2048


def _feature_index(feature: str) -> int:
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little") % DIM


def symbol_run_features(text: str) -> list[str]:
    symbols = ["^", *sorted(set(text.split())), "$"]
    return [" ".join(symbols[i - 1:i + 2]) for i in range(1, len(symbols) - 1)]


class SymbolRunEmbedder:
    def identity(self) -> dict:
        return {"kind": "symbol-runs", "dim": DIM, "version": 1}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in symbol_run_features(text):
                out[row, _feature_index(feature)] = 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)
