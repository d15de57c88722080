"""Benchmark: int8 fast path against plain fp32 MiniLM by text length (short, medium, at the cut).

The int8 ranges and SmoothQuant scales are calibrated on fixed texts; this checks that positions
late in a long input (up to MiniLM's 256 word-piece cut) keep parity with fp32 as short ones do.
Texts are bench_embed's English-like sentences joined to a target length in word pieces:

    python bench/bench_embed_lengths.py [--per-bucket 200] [--seed 0]

Prints the one-time cost of the fast path's first call (model load, ONNX export, calibration and
quantisation, in a fresh cache folder) next to plain fp32's model load, then, per bucket, the
cosine between each text's fast and plain vector (min, 1% quantile, mean), and the load average. Parity is a ratio of two paths run in the same process, so
the load changes the rates, not these figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embed import english_like_sentences  # noqa: E402
from schemas.config import EmbedderSpec  # noqa: E402
from stages.embed.models import make_embedder  # noqa: E402

BUCKETS = {"short (8-40 word pieces)": (8, 40), "medium (100-160)": (100, 160), "at the cut (256+)": (300, 400)}


def texts_of_length(tokenizer, low: int, high: int, count: int, seed: int) -> list[str]:
    """`count` texts of `low`..`high` word pieces (beyond 256 means cut at 256), from joined sentences."""
    rng = np.random.default_rng(seed)
    sentences = english_like_sentences(4000, seed)
    out = []
    while len(out) < count:
        target, text = int(rng.integers(low, high + 1)), ""
        while len(tokenizer.tokenize(text)) < target:
            text = (text + " " + sentences[int(rng.integers(len(sentences)))]).strip()
        out.append(text)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-bucket", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cache:
        fast = make_embedder(EmbedderSpec(), progress=False, model_cache=Path(cache))
        plain = make_embedder(EmbedderSpec(), progress=False, fast=False)
        started = time.perf_counter()
        tokenizer = plain.model().tokenizer
        plain_load, started = time.perf_counter() - started, time.perf_counter()
        fast.embed(["warm up"])
        print(f"first call: fast {time.perf_counter() - started:.1f} s (load, export, quantise), plain model load "
              f"{plain_load:.1f} s; load average {os.getloadavg()[0]:.1f}")
        for i, (name, (low, high)) in enumerate(BUCKETS.items()):
            texts = texts_of_length(tokenizer, low, high, args.per_bucket, args.seed + i)
            cosines = (fast.embed(texts) * plain.embed(texts)).sum(axis=1)
            print(f"{name}: {len(texts)} texts, cosine fast vs fp32 min {cosines.min():.4f}, "
                  f"1% quantile {np.quantile(cosines, 0.01):.4f}, mean {cosines.mean():.4f}")
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
