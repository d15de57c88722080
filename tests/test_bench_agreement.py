"""bench/bench_agreement.py ranks `near` candidates as the build's task does (its tokenizer and kind)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pipeline.tasks import load_task

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_agreement  # noqa: E402


def test_near_candidates_use_the_tasks_retrieval_tokens_and_kind(monkeypatch):
    used = []
    real = bench_agreement.retrieval_tokenizer

    def recording(tokens, kind):
        used.append((tokens, kind))
        return real(tokens, kind)

    monkeypatch.setattr(bench_agreement, "retrieval_tokenizer", recording)
    task = load_task("align-synth")
    assert task.retrieval_tokens != "words"  # the case the bench once tokenised as words
    pool = ["A B C", "A B D", "C D E", "E F G"]
    queries, candidates = bench_agreement.near_candidates(pool, task, 2, 2, np.random.default_rng(0))
    assert used == [(task.retrieval_tokens, task.kind)] and candidates.shape == (2, 2)
